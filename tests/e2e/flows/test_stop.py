"""Stopping: `bash scripts/run` started in the background as an operator does, then signalled,
leaves nothing running; a service that stays down is said once, not at every tick."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from prefect import get_client
from prefect.exceptions import ObjectNotFound

from deployments.engine_server import ENGINE
from deployments.processes import pids_with
from sandbox.postgres import ADMIN_DSN, drop_database
from sandbox.registry.catalogue import INDEX_DOCUMENTS
from sandbox.supabase import serve as serve_supabase
from tasks.control.dispatch import ControlPlane, dispatch_until
from tasks.control.pools import REBALANCE
from tasks.queue.statuses import SEED
from tasks.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
REGISTRE = ROOT / ".venv" / "bin" / "registre"
TEST_MARK = "REGISTRE_STOP_TEST"  # the test's own mark, inherited by all that scripts/run starts


def deployed() -> None:
    """`registre deploy` on the tests' Prefect server, unless another test did it."""
    with get_client(sync_client=True) as client, suppress(ObjectNotFound):
        client.read_deployment_by_name(REBALANCE.full_name)
        return
    done = subprocess.run([str(REGISTRE), "deploy"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_marked(mark: str) -> dict[int, str]:
    """Live processes whose environment carries the test's mark, with their command lines."""
    found = {}
    for pid in pids_with(f"{TEST_MARK}={mark}".encode()):
        with suppress(OSError):  # gone meanwhile
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


@dataclass
class Operator:
    """`bash scripts/run` in the background, on ports, a database, a Prefect home and Redis keys
    of its own (beside anything else running here)."""

    mark: str
    env: dict[str, str]
    run_dir: Path
    log_path: Path
    database: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["bash", "scripts/run", "--run-dir", str(self.run_dir)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as a shell's background job: its own process group
        )
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while what not in self.log():
            assert self.process and self.process.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, (
                f"no {what!r} in {timeout_s} s\n{self.log()[-3000:]}"
            )
            time.sleep(1)

    def queue_add(self, doc: object) -> None:
        local = dict(
            line.split("=", 1) for line in (self.run_dir / "local.env").read_text().splitlines()
        )
        subprocess.run(
            [str(REGISTRE), "queue", "add", "index", "--number", doc.lot,
             "--circonscription", doc.circonscription, "--cadastre", doc.cadastre],
            env={**self.env, **local}, cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip

    def rows(self) -> list[tuple]:
        dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.database}"
        with psycopg.connect(dsn) as conn:
            return conn.execute(
                "SELECT status_id, lease_expires_at, attemtps FROM extraction_queue"
            ).fetchall()


@pytest.fixture
def operator(tmp_path: Path, redis_prefix: str) -> Iterator[Operator]:
    mark = uuid.uuid4().hex
    database = f"rf_stop_{mark[:10]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        TEST_MARK: mark,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_API_PORT": str(free_port()),
        "SANDBOX_DATABASE": database,
        "SANDBOX_SUPABASE_PORT": str(free_port()),
        "SANDBOX_REGISTRY_PORT": str(free_port()),
        "SANDBOX_GEMINI_PORT": str(free_port()),
        "REDIS_KEY_PREFIX": redis_prefix,
        # no Supabase environment, whatever .env says: the local stand-ins
        "PROD_SUPABASE_URL": "",
        "STAGING_SUPABASE_URL": "",
        "DEV_SUPABASE_URL": "",
        # a host of a known size, whatever this machine is; one download at a time
        "SERVER_MAX_CPU": "8",
        "SERVER_MAX_RAM": "16",
        "WORKER_COUNT": "1",
        "OCR_WORKER_POOL_SIZE": "2",
        "WORKER_DRAIN_SECONDS": "2",  # the run in progress is stopped, not waited for
    }
    op = Operator(mark, env, tmp_path / "run", tmp_path / "scripts-run.log", database)
    try:
        yield op
    finally:
        if op.process and op.process.poll() is None:
            os.killpg(op.process.pid, signal.SIGKILL)
        for pid in processes_marked(mark):  # whatever a failed test left
            with suppress(ProcessLookupError):  # gone with one killed before it
                os.kill(pid, signal.SIGKILL)
        drop_database(ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "to_group"),
    [
        (signal.SIGTERM, False),  # `kill PID`
        (signal.SIGINT, True),  # Ctrl-C in the terminal: the whole foreground process group
    ],
    ids=["SIGTERM-to-scripts-run", "Ctrl-C-to-its-group"],
)
def test_a_signal_to_scripts_run_leaves_no_process_of_it(
    operator: Operator, signum: signal.Signals, to_group: bool
) -> None:
    operator.start()
    operator.wait_for("Ctrl-C stops it", timeout_s=360)  # server, pools, deployments, workers
    operator.queue_add(INDEX_DOCUMENTS[1])
    deadline = time.monotonic() + 240
    while not any("chrom" in cmd for cmd in processes_marked(operator.mark).values()):
        assert time.monotonic() < deadline, f"no Chromium started\n{operator.log()[-3000:]}"
        time.sleep(0.5)
    running = processes_marked(operator.mark)
    assert any("prefect server" in cmd for cmd in running.values()), running
    assert any(ENGINE in cmd for cmd in running.values()), running

    assert operator.process is not None
    if to_group:
        os.killpg(operator.process.pid, signum)
    else:
        operator.process.send_signal(signum)
    operator.process.wait(180)

    assert processes_marked(operator.mark) == {}, operator.log()[-3000:]
    output = operator.log()
    assert "host " in output and " stopped" in output, output[-3000:]
    # the run it stopped gave its row back, no attempt counted (or it had finished)
    [(status, lease_expires_at, attempts)] = rows = operator.rows()
    assert lease_expires_at is None, (rows, output)
    assert status in (SEED.waiting, SEED.ready_for_ocr, SEED.done), (rows, output)
    assert status != SEED.waiting or not attempts, (rows, output)


@pytest.mark.slow
def test_a_dispatch_against_an_unreachable_supabase_says_it_once_and_when_it_is_back(
    prefect_api: None,
    pg_dsn: str,
    redis_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, key = free_port(), f"key-{uuid.uuid4().hex}"
    settings = load_settings(
        _env_file=None,
        dev_supabase_url=f"http://127.0.0.1:{port}",  # nothing listens there yet
        dev_supabase_service_key=key,
        redis_key_prefix=redis_prefix,
    )
    deployed()
    caplog.set_level(logging.DEBUG, logger="tasks")
    stop = threading.Event()
    with ControlPlane.open(settings) as cp:
        loop = threading.Thread(target=dispatch_until, args=(cp, 0.1, stop))
        loop.start()
        try:
            deadline = time.monotonic() + 120
            while sum("registre_queue_counts_v2" in r.getMessage() for r in caplog.records) < 12:
                assert time.monotonic() < deadline  # three ticks, each retried four times
                time.sleep(0.2)
            down = [r for r in caplog.records if r.levelno >= logging.WARNING]
            with serve_supabase(pg_dsn, key, tmp_path / "storage", port=port):
                deadline = time.monotonic() + 60
                while not any("answers again" in r.getMessage() for r in caplog.records):
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                stop.set()
                loop.join()
        finally:
            stop.set()
            loop.join()
    said = [r.getMessage() for r in down]
    assert len(said) == 1, said
    assert "Supabase unreachable" in said[0] and "check DEV_SUPABASE_URL" in said[0]
    assert not any(r.exc_info for r in caplog.records)
    back = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert back == ["dev: Supabase answers again"]


@pytest.mark.slow
def test_a_dispatch_against_an_unreachable_redis_says_what_to_check(
    prefect_api: None, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = load_settings(_env_file=None, redis_url=f"redis://127.0.0.1:{port}/0")
    stop = threading.Event()
    with ControlPlane.open(settings) as cp:
        loop = threading.Thread(target=dispatch_until, args=(cp, 0.05, stop))
        loop.start()
        time.sleep(3)  # some 50 ticks
        stop.set()
        loop.join()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, said
    assert said[0].startswith(f"dispatch: Redis at 127.0.0.1:{port}/0 does not answer"), said
    assert "Connection refused" in said[0] and "check REDIS_URL" in said[0], said
    assert not any(r.exc_info for r in caplog.records)
