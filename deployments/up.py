"""`registre up`: one host with everything: a Prefect server (unless PREFECT_API_URL points at
one), `registre deploy`, then `registre worker --pool all`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
from dotenv import dotenv_values
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_API_PORT, temporary_settings

from deployments import server_database
from deployments.deploy import PREFECT, deploy
from deployments.processes import kill_group, process_tree, stop_signals_interrupt
from deployments.worker import POOLS, run_host
from tasks.control.planning import settings_offer
from tasks.failures import ConfigError
from tasks.settings import Settings

logger = logging.getLogger(__name__)

# The server `registre up` starts. A 30 s schedule keeps a few minutes of runs ahead instead of
# 100 (PREFECT.md §0, §12); deployment-concurrency leases survive a server restart on disk (in
# memory, a restart could leak the rebalance's slot and block every later run).
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "0:02:00",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "6",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": (
        "prefect.server.concurrency.lease_storage.filesystem"
    ),
}
# A first start on PostgreSQL runs all of Prefect's migrations: a minute or more on a busy machine.
START_TIMEOUT_S = 300
VACUUM_LOOP_S = (60, 3600)  # the db_vacuum loop: at least a minute apart, at most Prefect's hour


def retention_env(settings: Settings) -> dict[str, str]:
    """Prefect's own db_vacuum for document runs (`flow_runs`: top-level runs ended before the
    retention, with their task runs, logs and artifacts) and events, from the operators'
    retentions. Durations in ISO 8601: PREFECT_SERVER_EVENTS_RETENTION_PERIOD refuses seconds."""
    runs_s = settings.document_run_retention_days * 86400
    events_s = settings.event_retention_hours * 3600
    # a 24th of the shortest retention: nothing outlives its retention by more than ~4 %
    low, high = VACUUM_LOOP_S
    loop_s = min(high, max(low, min(runs_s, events_s) / 24))
    return {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": f"PT{runs_s:.3f}S",
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{events_s:.3f}S",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS": f"{loop_s:.0f}",
    }


def operator_env() -> dict[str, str]:
    """What the operator set, in `.env` (which Prefect reads too) or the environment."""
    return {**{k: v for k, v in dotenv_values(".env").items() if v}, **os.environ}


def server_env(settings: Settings, api: str) -> dict[str, str]:
    """The server's environment. Where the UI finds the API and the derived retention are
    defaults: a variable the operator set wins (a proxy's address, a retention of their own)."""
    own = operator_env()
    defaults = {"PREFECT_UI_API_URL": api, **retention_env(settings)}
    return {**{k: v for k, v in defaults.items() if k not in own}, **os.environ, **SERVER_ENV}


@contextmanager
def prefect_server(run_dir: Path, port: int = 4200, *, settings: Settings) -> Iterator[str]:
    # 127.0.0.1 unless the operator opens it to other hosts (PREFECT_SERVER_API_HOST=0.0.0.0)
    host = operator_env().get("PREFECT_SERVER_API_HOST", "127.0.0.1")
    api = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/api"
    if url := server_database.configured_url(operator_env()):
        server_database.prepare(url)  # PostgreSQL: the database and pg_trgm, or a clear error
    log = (run_dir / "prefect-server.log").open("ab")
    command = [PREFECT, "server", "start", "--host", host, "--port", str(port)]
    # its own session: on Ctrl-C the workers stop first, the server last. The UI is told where
    # its API is (`--port` alone leaves it calling :4200), unless the operator set it (a proxy).
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(settings, api),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the Prefect server exited; see {log.name}")
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"the Prefect server did not start in {START_TIMEOUT_S} s; see {log.name}"
            )
        logger.info("Prefect server at %s (UI: http://127.0.0.1:%d)", api, port)
        yield api
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and whatever it started (its own session); at once on a second Ctrl-C."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            process.wait(20)
    kill_group(process.pid, signal.SIGKILL)
    process.wait()


def up(settings: Settings, run_dir: Path) -> None:
    if not settings.environments():
        raise ConfigError(
            "no Supabase environment is configured: set PROD_/STAGING_/DEV_SUPABASE_URL and"
            " _SERVICE_KEY (or run `bash scripts/run` without them to use the local stand-ins)"
        )
    settings_offer(settings, POOLS)  # refuse a host that cannot run before starting anything
    run_dir.mkdir(parents=True, exist_ok=True)
    # until the host's drain takes over, a stop signal unwinds what was started (the server)
    with process_tree(), stop_signals_interrupt(), ExitStack() as stack:
        api = os.environ.get("PREFECT_API_URL") or stack.enter_context(
            prefect_server(run_dir, PREFECT_SERVER_API_PORT.value(), settings=settings)
        )
        # Prefect reads its settings at import: this process's clients need telling too
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        os.environ["PREFECT_API_URL"] = api
        deploy(settings)
        run_host(settings, POOLS, run_dir)
