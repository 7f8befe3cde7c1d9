from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.up import prefect_server
from flows.common import this_host_registered
from sandbox.postgres import insert_registry_accounts
from tasks.control.pools import REBALANCE
from tasks.settings import load_settings


@contextmanager
def throwaway_prefect_server(home: Path, **environ: str) -> Iterator[str]:
    """A throwaway Prefect server started as `registre up` starts its own, made the current one
    (and the previous one again after). `environ`: the server's own, e.g. its database URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    names = ("PREFECT_HOME", "PREFECT_API_URL", *environ)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(environ, PREFECT_HOME=str(home))  # the database, and the workers' files
    try:
        with (
            prefect_server(home, port, settings=load_settings()) as api,
            temporary_settings(updates={PREFECT_API_URL: api}),
        ):
            os.environ["PREFECT_API_URL"] = api
            yield api
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One throwaway Prefect server (SQLite) for every flow test, started as `registre up`
    starts its own: `prefect_test_harness`'s server is ephemeral and runs no scheduler, so the
    rebalance's schedule would never make a run. Starting one costs ~20 s. A module that needs
    another server (PostgreSQL's) overrides this fixture."""
    with throwaway_prefect_server(tmp_path_factory.mktemp("prefect-server")):
        yield


@dataclass
class Pipeline:
    """The whole system pointed at the stand-ins: Supabase (prod), the registry, Gemini, Redis."""

    project: Any
    registry: str
    gemini: str

    def insert(self, source: str, **columns: Any) -> str:
        values = {"document_source": source, **columns}
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        rows = self.project.sql(
            f"INSERT INTO extraction_queue ({names}) VALUES ({marks}) RETURNING id",
            tuple(values.values()),
        )
        return str(rows[0][0])

    def row(self, job_id: str) -> dict[str, Any]:
        with_names = self.project.sql(
            "SELECT to_jsonb(q) FROM extraction_queue q WHERE id = %s", (job_id,)
        )
        return with_names[0][0]

    def downloaded(self, source: str, content: bytes, **columns: Any) -> str:
        """A row as the registre stage leaves it: its file in Storage, ready for OCR."""
        from tasks.queue.statuses import SEED
        from tasks.queue.table import Queue

        job_id = self.insert(source, status_id=SEED.ready_for_ocr, **columns)
        storage = Queue(load_settings()).storage("prod")
        storage.ensure_buckets()
        bucket = "index" if source == "index" else "actes"
        path = storage.upload(bucket, f"{job_id}.pdf", content, "application/pdf")
        self.project.sql("UPDATE extraction_queue SET supabase_path = %s WHERE id = %s",
                         (path, job_id))  # fmt: skip
        return job_id

    def download(self, path: str) -> bytes:
        from tasks.queue.table import Queue

        return Queue(load_settings()).storage("prod").download(path, "index")


@pytest.fixture
def pipeline(
    prefect_api: None,
    monkeypatch: pytest.MonkeyPatch,
    supabase_projects: dict[str, Any],
    registry: str,
    gemini_api: str,
    redis_prefix: str,
    gemini_key: str,
) -> Iterator[Pipeline]:
    prod = supabase_projects["prod"]
    env = {
        "PROD_SUPABASE_URL": prod.url,
        "PROD_SUPABASE_SERVICE_KEY": prod.service_key,
        "REGISTRY_BASE_URL": registry,
        "GEMINI_BASE_URL": gemini_api,
        "GEMINI_API_KEY": gemini_key,
        "REDIS_KEY_PREFIX": redis_prefix,
        "QUEUE_LEASE_SECONDS": "60",
        "GEMINI_MAX_ATTEMPTS": "3",
        # A nominal host, not this machine: the stand-ins are light, and the budget detected on a
        # 2-core machine holds no registre run of the real cost table.
        "SERVER_MAX_CPU": "8",
        "SERVER_MAX_RAM": "16",
        "OCR_WORKER_POOL_SIZE": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(prod.dsn, autocommit=True) as conn:
        insert_registry_accounts(conn)
    with this_host_registered(load_settings()):
        yield Pipeline(prod, registry, gemini_api)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


REGISTRE = str(Path(sys.executable).with_name("registre"))
_deployed: set[str] = set()


@dataclass
class System:
    """The deployed system on the test's Prefect server: `registre deploy` done, hosts started
    with `registre worker`, the Prefect API at hand."""

    pipeline: Pipeline
    dev: Any
    run_dir: Path
    hosts: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_host(self, host_id: str, pool: str = "all", **env: str) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"host-{host_id}.log").open("ab")
        process = subprocess.Popen(
            [REGISTRE, "worker", "--pool", pool, "--host-id", host_id, "--run-dir",
             str(self.run_dir)],
            env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.hosts[host_id] = process
        return process

    def stop_host(self, host_id: str, *, hurry: bool = False, timeout: float = 180) -> int:
        process = self.hosts.pop(host_id)
        process.send_signal(signal.SIGTERM)
        if hurry:
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def log(self, host_id: str) -> str:
        return (self.run_dir / f"host-{host_id}.log").read_text(errors="replace")

    def client(self) -> Any:
        return get_client(sync_client=True)

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := condition():
                return value
            for host_id, process in self.hosts.items():
                exited = process.poll() is not None
                assert not exited, f"host {host_id} exited:\n{self.log(host_id)[-3000:]}"
            time.sleep(0.5)
        logs = "\n".join(f"--- {h}\n{self.log(h)[-2000:]}" for h in self.hosts)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")

    def runs(self, deployment: str | None = None) -> list[Any]:
        with self.client() as client:
            runs = client.read_flow_runs(limit=200)
        return [r for r in runs if deployment is None or r.name.startswith(deployment)]


def delete_document_runs() -> None:
    """Every run but the rebalance's scheduled ones (the scheduler would take a minute to make
    them again), so that one test's runs never take another's slots."""
    with get_client(sync_client=True) as client:
        keep = client.read_deployment_by_name(REBALANCE.full_name).id
        while runs := [r for r in client.read_flow_runs(limit=200) if r.deployment_id != keep]:
            for run in runs:
                client.delete_flow_run(run.id)


@pytest.fixture
def system(
    pipeline: Pipeline,
    supabase_projects: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[System]:
    dev = supabase_projects["dev"]
    monkeypatch.setenv("DEV_SUPABASE_URL", dev.url)
    monkeypatch.setenv("DEV_SUPABASE_SERVICE_KEY", dev.service_key)
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    api = PREFECT_API_URL.value()
    if api not in _deployed:
        done = subprocess.run([REGISTRE, "deploy"], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        _deployed.add(api)
    delete_document_runs()
    system = System(pipeline, dev, tmp_path)
    try:
        yield system
    finally:
        for host_id in list(system.hosts):
            system.stop_host(host_id, hurry=True)
        delete_document_runs()
