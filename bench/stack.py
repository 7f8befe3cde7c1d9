"""The deployed system on the stand-ins for the benchmarks: a Prefect server of its own, Redis
and the Supabase stand-in as processes that can be killed and started again on their ports, the
registry and Gemini stand-ins, `registre deploy`, and `registre worker` hosts.

Every process it starts, and every process those start, carries `BENCH_STACK=<id>` in its
environment; bench/reaper.py stops them all when the benchmark ends, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.docker import settings_file
from deployments.processes import pids_with
from sandbox import gemini
from sandbox import supabase as supabase_standin
from sandbox.postgres import (
    create_database,
    drop_database,
    insert_registry_accounts,
    prefect_database_url,
)
from sandbox.process import stop
from sandbox.registry import serve as serve_registry
from tasks.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MARK = "BENCH_STACK"

__all__ = ["BIN", "ROOT", "Stack", "free_port", "is_prefect_worker", "pids_with"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def remove_run_containers() -> None:
    """Every flow run's container on this machine's engine, running or not (the reaper, which
    finds processes by their environment, does not see into them)."""
    found = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.prefect.flow-run-id"],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True)


def is_prefect_worker(pid: int) -> bool:
    """Prefect's own worker or ours (deployments/prefect_worker.py, docker_worker.py)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    ours = (b"deployments.prefect_worker", b"deployments.docker_worker")
    return b"worker\0start" in argv or any(module in argv for module in ours)


class Stack:
    """Enter with `with Stack(tmp) as stack:`; everything started is stopped on exit. The server's
    retentions come from the settings the environment gives (e.g. EVENT_RETENTION_HOURS)."""

    def __init__(self, tmp: Path, *, registry_latency_s: float = 0.3, gemini_delay_s: float = 1.0,
                 rpm: int = 100_000, tpm: int = 10**9, environ: dict[str, str] | None = None,
                 prefect_on_postgres: bool = False) -> None:  # fmt: skip
        """`environ`: variables for every process of the stack (the Prefect server included).
        `prefect_on_postgres`: the Prefect server on a throwaway PostgreSQL database, as
        production's, instead of SQLite."""
        self.tmp = tmp
        self.prefect_on_postgres = prefect_on_postgres
        self.environ = environ or {}
        self.registry_latency_s = registry_latency_s
        self.gemini_delay_s = gemini_delay_s
        self.quota = (rpm, tpm)
        self.hosts: dict[str, subprocess.Popen[bytes]] = {}
        self._exit = ExitStack()
        self.redis_port = free_port()
        self.supabase_port = free_port()
        self.key, self.gemini_key = uuid.uuid4().hex, uuid.uuid4().hex
        self.mark = f"{MARK}={uuid.uuid4().hex}"

    def __enter__(self) -> Stack:
        stack = self._exit
        saved = dict(os.environ)
        stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        self.start_reaper()
        os.environ.update(self.environ)
        os.environ["PREFECT_HOME"] = str(self.tmp / "prefect")
        os.environ[MARK] = self.mark.split("=", 1)[1]  # inherited by everything started below
        from deployments.up import prefect_server

        if self.prefect_on_postgres:
            url = os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database_url()
            stack.callback(drop_database, url)  # after the server has stopped
        self.api = stack.enter_context(
            prefect_server(self.tmp, port=free_port(), settings=load_settings())
        )
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: self.api}))
        self.dsn = create_database()
        stack.callback(drop_database, self.dsn)
        self.start_redis()
        stack.callback(self.stop_redis)
        self.start_supabase()
        stack.callback(lambda: stop(self.supabase))
        faults = {"latency_s": self.registry_latency_s}
        self.registry = stack.enter_context(serve_registry(faults=faults))
        rpm, tpm = self.quota
        self.gemini = stack.enter_context(gemini.serve(self.gemini_key, rpm=rpm, tpm=tpm))
        httpx.post(f"{self.gemini}/_sandbox/faults", json={"delay_s": self.gemini_delay_s})
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            insert_registry_accounts(conn)
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        stack.callback(self.stop_hosts)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._exit.close()

    def start_reaper(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != MARK}
        reaper = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("reaper.py")), self.mark],
            stdin=subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
        assert reaper.stdin is not None

        def close() -> None:  # the normal end: it sweeps whatever the stops below left
            reaper.stdin.close()
            reaper.wait(60)

        self._exit.callback(close)

    def processes(self) -> list[int]:
        """Every live process of the stack."""
        return pids_with(self.mark.encode())

    # --- the services that faults restart

    def start_redis(self) -> None:
        # set-proc-title no: its process title would overwrite the environment the reaper reads
        command = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--set-proc-title", "no"]  # fmt: skip
        log = (self.tmp / "redis.log").open("ab")
        self.redis = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(port=self.redis_port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop_redis(self) -> None:
        self.redis.kill()
        self.redis.wait()

    def restart_redis(self, down_s: float = 2.0) -> None:
        """Redis goes away and comes back empty (it keeps nothing on disk)."""
        self.stop_redis()
        time.sleep(down_s)
        self.start_redis()

    def start_supabase(self) -> None:
        self.supabase, self.supabase_url = supabase_standin.start(
            self.dsn, self.key, self.tmp / "storage", port=self.supabase_port
        )

    def drop_supabase(self, down_s: float) -> None:
        """Every connection to Supabase dropped, and none answered, for `down_s`."""
        self.supabase.kill()
        self.supabase.wait()
        time.sleep(down_s)
        self.start_supabase()

    # --- the system

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_API_URL": self.api,
            "PROD_SUPABASE_URL": self.supabase_url,
            "PROD_SUPABASE_SERVICE_KEY": self.key,
            "REGISTRY_BASE_URL": self.registry,
            "GEMINI_BASE_URL": self.gemini,
            "GEMINI_API_KEY": self.gemini_key,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "REDIS_KEY_PREFIX": self.prefix,
            # the benchmarks send the catalogue's documents again and again: each is a download
            "REUSE_DOWNLOAD_HOURS": "0",
            **extra,
        }
        for name in ("DEV", "STAGING"):
            env.pop(f"{name}_SUPABASE_URL", None)
            env.pop(f"{name}_SUPABASE_SERVICE_KEY", None)
        return env

    def deploy(self, *options: str, **extra: str) -> None:
        """`registre deploy` with its options, e.g. "--docker", "--image", NAME, and settings."""
        subprocess.run([BIN / "registre", "deploy", *options], env=self.env(**extra), cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip

    def deploy_docker(self, image: str, **extra: str) -> None:
        """`registre deploy --docker` on the host's network, the runs' settings file written from
        what the hosts run with (`extra` included); the runs' containers are removed at the end."""
        env_file = self.tmp / "registre.env"
        env_file.write_text(settings_file(self.env(**extra)))
        env_file.chmod(0o644)  # the image's user reads it
        # the pools' limits come from the cost table as `extra` sets it (a container may not ask
        # for more vCPU than the machine has)
        options = ("--docker", "--image", image, "--env-file", str(env_file), "--network", "host")
        self.deploy(*options, **extra)
        self._exit.callback(remove_run_containers)

    def start_host(self, host_id: str, **extra: str) -> None:
        log = (self.tmp / f"host-{host_id}.log").open("ab")
        self.hosts[host_id] = subprocess.Popen(
            [BIN / "registre", "worker", "--host-id", host_id, "--run-dir", str(self.tmp)],
            env=self.env(REGISTRE_HOST_ID=host_id, **extra), cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

    def kill_host(self, host_id: str) -> int:
        """The machine is lost: the host, its Prefect workers and its runs, all at once."""
        pids = pids_with(f"REGISTRE_HOST_ID={host_id}".encode())
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.hosts.pop(host_id).wait()
        return len(pids)

    def stop_hosts(self) -> None:
        for process in self.hosts.values():
            process.send_signal(signal.SIGTERM)
            process.send_signal(signal.SIGTERM)  # a second one: stop the runs now
        for process in self.hosts.values():
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
        self.hosts.clear()

    def insert(self, rows: list[tuple[Any, ...]]) -> list[str]:
        """(source, number, circonscription, cadastre, designation, acte type) -> row ids."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return [
                str(conn.execute(
                    "INSERT INTO extraction_queue (document_source, document_number,"
                    " circonscription_fonciere, cadastre, designation_secondaire, acte_type)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    row,
                ).fetchone()[0])
                for row in rows
            ]  # fmt: skip

    def rows(self, ids: list[str], columns: str = "status_id, created_at") -> dict[str, tuple]:
        with psycopg.connect(self.dsn) as conn:
            found = conn.execute(
                f"SELECT id::text, {columns} FROM extraction_queue WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        return {r[0]: r[1:] for r in found}
