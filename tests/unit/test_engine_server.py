"""Warm starts (deployments/engine_server.py, deployments/engine_session.py): a run's process as
the worker starts it, against a real engine server running a probe module in place of Prefect's
engine. The run behaves as the process it replaces: its output, code, directory, environment and
signals are its own; killed, it takes its engine along; with no server, it starts cold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from deployments.engine_server import ENGINE, SOCKET_ENV, ServerProcess, pool_flows
from deployments.processes import alive

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import os, signal, sys, time
what = os.environ.get("PROBE", "")
if __name__ == "__main__":
    if what == "term":
        def on_term(*_):
            print("terminated", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_term)
    print(f"pid={os.getpid()} ppid={os.getppid()} cwd={os.getcwd()} mark={os.environ.get('MARK')}",
          flush=True)
    if what.startswith("exit:"):
        sys.exit(int(what[5:]))
    if what in ("sleep", "term"):
        time.sleep(60)
    if what == "raise":
        raise RuntimeError("the probe failed")
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "probe.py").write_text(PROBE)
    return {**os.environ, "PYTHONPATH": str(ROOT), SOCKET_ENV: str(tmp_path / "engines.sock")}


def server_command(env: dict[str, str]) -> list[str]:
    """An engine server running the probe in place of Prefect's engine."""
    return [sys.executable, "-m", "deployments.engine_server", "--socket", env[SOCKET_ENV],
            "--module", "probe", "--preload", "probe"]  # fmt: skip


def wait_listening(socket_path: Path, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not socket_path.exists():
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(server_command(env), cwd=tmp_path, env=env)
    wait_listening(Path(env[SOCKET_ENV]), process, 30)
    yield process
    process.kill()
    process.wait()


def start_run(cwd: Path, env: dict[str, str], probe: str) -> subprocess.Popen[str]:
    """A run's process, as the worker starts it."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", ENGINE], cwd=cwd, env={**env, "PROBE": probe},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def probe_line(run: subprocess.Popen[str]) -> dict[str, str]:
    assert run.stdout is not None
    return dict(item.split("=", 1) for item in run.stdout.readline().split())


def test_a_run_is_forked_and_keeps_its_own_output_code_directory_and_environment(
    tmp_path: Path, env: dict[str, str], server: subprocess.Popen[bytes]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "probe.py").write_text(PROBE)
    for code in (0, 7):
        with start_run(elsewhere, {**env, "MARK": f"run-{code}"}, f"exit:{code}") as run:
            seen = probe_line(run)
            assert run.wait(30) == code
        assert seen["ppid"] == str(server.pid)  # forked by the server, not started afresh
        assert seen["cwd"] == str(elsewhere) and seen["mark"] == f"run-{code}"

    with start_run(tmp_path, env, "raise") as failing:
        _, errors = failing.communicate(timeout=30)
    assert failing.returncode == 1 and "RuntimeError: the probe failed" in errors


def test_signals_reach_the_engine_and_a_killed_run_takes_it_along(
    tmp_path: Path, env: dict[str, str], server: subprocess.Popen[bytes]
) -> None:
    with start_run(tmp_path, env, "term") as run:
        probe_line(run)
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 3
        assert run.stdout is not None and run.stdout.readline().strip() == "terminated"

    with start_run(tmp_path, env, "sleep") as run:
        engine = int(probe_line(run)["pid"])
        run.kill()
    deadline = time.monotonic() + 10
    while alive(engine):
        assert time.monotonic() < deadline, "the engine outlived its run's process"
        time.sleep(0.05)

    with start_run(tmp_path, env, "sleep") as run:
        os.kill(int(probe_line(run)["pid"]), signal.SIGKILL)
        assert run.wait(30) == -signal.SIGKILL  # the engine killed: so is the run, as before
    assert server.poll() is None


@pytest.fixture
def importing_server(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A server listening, its imports 3 s from their end (when they write `imported`)."""
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(3)\nopen('imported', 'w')\n")
    command = [*server_command(env), "--preload", "slow"]
    with subprocess.Popen(command, cwd=tmp_path, env=env) as server:
        try:
            wait_listening(Path(env[SOCKET_ENV]), server, 2)
            yield server
        finally:
            server.kill()


def test_a_run_sent_while_the_server_still_imports_waits_for_it_and_starts_warm(
    tmp_path: Path, env: dict[str, str], importing_server: subprocess.Popen[bytes]
) -> None:
    with start_run(tmp_path, env, "exit:0") as run:
        assert probe_line(run)["ppid"] == str(importing_server.pid)
        assert run.wait(30) == 0


def test_with_no_server_or_other_interpreter_settings_a_run_starts_cold(
    tmp_path: Path, env: dict[str, str], server: subprocess.Popen[bytes]
) -> None:
    for different in ({"PYTHONWARNINGS": "ignore"}, {SOCKET_ENV: str(tmp_path / "none.sock")}):
        with start_run(tmp_path, {**env, **different}, "exit:0") as run:
            _, errors = run.communicate(timeout=60)
        # the cold start is Prefect's own engine, which wants a flow run id
        assert run.returncode == 1 and "Invalid flow run id" in errors, errors


def test_the_server_stops_when_its_worker_is_gone(tmp_path: Path, env: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); "
         "time.sleep(60)", *server_command(env)], cwd=tmp_path, env=env,
    )  # fmt: skip
    wait_listening(Path(env[SOCKET_ENV]), worker, 30)
    servers = [
        pid for pid in map(int, Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
                           .read_text().split())
    ]  # fmt: skip
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in servers):
        assert time.monotonic() < deadline, "the engine server outlived its worker"
        time.sleep(0.05)


def test_a_server_that_died_is_started_again_at_the_next_run(tmp_path: Path) -> None:
    engines = ServerProcess(tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        first = engines.process
        first.kill()
        first.wait()
        engines.ensure_running()
        assert engines.process.pid != first.pid and engines.process.poll() is None
        wait_listening(engines.socket_path, engines.process, 60)
    finally:
        engines.stop()
    assert engines.process.returncode is not None


def deployment(path: str | None, *steps: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(path=path, pull_steps=list(steps) or None)


def test_a_run_starts_where_its_deployments_code_already_is() -> None:
    with warnings.catch_warnings():  # the worker registers itself as Prefect's "process" type
        warnings.simplefilter("ignore")
        from deployments.prefect_worker import code_directory

    here = {"prefect.deployments.steps.set_working_directory": {"directory": "/srv/flows"}}
    clone = {"prefect.deployments.steps.git_clone": {"repository": "https://example.org/x"}}
    assert code_directory(deployment(None, here)) == Path("/srv/flows")  # `prefect deploy`'s
    assert code_directory(deployment("/srv/flows")) == Path("/srv/flows")
    assert code_directory(deployment(None, clone, here)) is None  # Prefect's engine pulls it
    assert code_directory(deployment(None)) is None
    assert code_directory(None) is None


def test_the_soak_samples_the_server_not_the_engines_it_forked(
    tmp_path: Path, env: dict[str, str], server: subprocess.Popen[bytes], bench_module
) -> None:
    """A forked engine keeps its server's command line: measured as the server, a run's threads
    and files would look like the server's growth."""
    sampling = bench_module("sampling")
    stack = SimpleNamespace(redis=SimpleNamespace(pid=-1))
    with start_run(tmp_path, {**env, "REGISTRE_HOST_ID": "h"}, "sleep") as run:
        engine = int(probe_line(run)["pid"])
        assert sampling.role(stack, server.pid) == "engine server ?"
        assert sampling.role(stack, engine) is None
        run.kill()


def test_a_signal_sent_before_the_engine_exists_reaches_it_once_it_does(
    tmp_path: Path, env: dict[str, str], importing_server: subprocess.Popen[bytes]
) -> None:
    with start_run(tmp_path, env, "sleep") as run:
        wait_holding(run.pid, signal.SIGTERM)  # asking for its engine
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == -signal.SIGTERM
    # it ended by it only once there was an engine to pass it on to, not before
    assert (tmp_path / "imported").exists()


def wait_holding(pid: int, signum: int) -> None:
    """Until process `pid` blocks `signum`."""
    deadline = time.monotonic() + 30
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        blocked = int(status.split("SigBlk:")[1].split()[0], 16)
        if blocked & (1 << (signum - 1)):
            return
        assert time.monotonic() < deadline, "it never held the signal"
        time.sleep(0.01)


def test_a_workers_server_imports_the_flows_of_its_pool_from_the_start() -> None:
    assert pool_flows("registre") == ("flows.registre",)
    assert pool_flows("ocr") == ("flows.ocr",)
    assert pool_flows("control") == ("flows.rebalance",)
