"""Warm starts for flow runs: a process beside each of our Prefect process workers that has
imported Prefect's engine and its pool's flows (any other flow's module after its first run),
and forks a run's engine on request. A cold run pays a fresh interpreter and its imports
(1.6 s of CPU for a document flow, more than the flow's own start on 2 busy cores); a forked one
starts in milliseconds and shares the imported pages with its siblings.

A run's process is still the one the worker started, `deployments/engine_session.py`: it sends
its standard streams, environment and directory here, is told the engine's pid, passes its
signals on and exits with the engine's code. The engine dies with it (SIGKILL included), and
reports its code itself, so the runs do not depend on this process once they are forked. Runs
whose interpreter settings differ from this process's (PYTHON*, Prefect's logging, read at
start) are told to start cold. Code changed on disk reaches the runs when the worker is replaced
(`registre worker` recycles it), as it already did the worker's own hooks.

Run as `python -m deployments.engine_server --socket PATH` by deployments/prefect_worker.py;
it exits when that worker does."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

SOCKET_ENV = "REGISTRE_ENGINE_SOCKET"  # where a run's process finds this server
ROOT = Path(__file__).resolve().parent.parent  # deploy.py's, not imported: it is heavy
ENGINE = str(Path(__file__).with_name("engine_session.py"))  # a run's process
ENGINE_MODULE = "prefect.engine"  # what a run executes, as `python -m`
PRELOAD = ("prefect.engine", "prefect.flow_engine")  # the engine and what it imports once started
ENTRYPOINT_ENV = "PREFECT__FLOW_ENTRYPOINT"  # "flows/registre.py:registre"
STARTUP_SETTINGS = ("PYTHON", "PREFECT_LOGGING_")  # read once, at the interpreter's start
REQUEST_TIMEOUT_S = 5.0
PARENT_CHECK_S = 0.5


def startup_differences(env: dict[str, str]) -> list[str]:
    """The settings by which a run with `env` would start the interpreter or Prefect's logging
    otherwise than this process did."""
    names = {k for k in [*env, *os.environ] if k.startswith(STARTUP_SETTINGS)}
    return sorted(k for k in names if env.get(k) != os.environ.get(k))


def pool_flows(pool: str, root: Path = ROOT) -> tuple[str, ...]:
    """The modules of the flows prefect.yaml deploys to `pool`, as the runs import them."""
    deployments = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]
    modules = (module_of(d["entrypoint"], str(root)) for d in deployments
               if d["work_pool"]["name"] == pool)  # fmt: skip
    return tuple(dict.fromkeys(m for m in modules if m is not None))


def module_of(entrypoint: str, cwd: str) -> str | None:
    """The importable name of an entrypoint's file ("flows/registre.py:registre" in `cwd` ->
    "flows.registre"), None when it is no Python file inside `cwd`."""
    path = Path(cwd, entrypoint.rsplit(":", 1)[0]).resolve()
    if path.suffix != ".py":
        return None
    with contextlib.suppress(ValueError):
        return ".".join(path.relative_to(Path(cwd).resolve()).with_suffix("").parts)
    return None


class EngineServer:
    def __init__(
        self, socket_path: Path, module: str = ENGINE_MODULE, preload: tuple[str, ...] = PRELOAD
    ) -> None:
        self.socket_path = socket_path
        self.module = module
        self.preload = preload
        self.parent = os.getppid()
        self.warmed: set[str] = set()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.selector = selectors.DefaultSelector()

    def warm(self, module: str) -> None:
        """Import `module` here once, so that the runs forked after it find it loaded."""
        if module in self.warmed:
            return
        self.warmed.add(module)
        try:
            importlib.import_module(module)
        except Exception:  # the run's own engine reports it, in the run's logs
            logger.exception("could not preload %s; its runs import it themselves", module)
        gc.freeze()  # imported objects stay out of the children's collections: fewer copied pages

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        # listening before the imports: the worker's first runs wait for them, not start cold
        self.listener.bind(str(self.socket_path))
        self.listener.listen(64)
        for module in self.preload:
            self.warm(module)
        # a forked engine resets it; here, children are reaped by the kernel
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        with self.listener, self.selector:
            self.selector.register(self.listener, selectors.EVENT_READ)
            while os.getppid() == self.parent:
                if self.selector.select(PARENT_CHECK_S):
                    conn, _ = self.listener.accept()
                    with conn:
                        self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT_S)
        fds: list[int] = []
        try:
            _, fds, _, _ = socket.recv_fds(conn, 1, 3)
            request = json.loads(conn.makefile("rb").readline())
            env, cwd = request["env"], request["cwd"]
            if len(fds) != 3:
                raise ValueError(f"{len(fds)} standard streams sent, not 3")
            if differences := startup_differences(env):
                logger.warning("a run starts cold: its %s differ", ", ".join(differences))
                conn.sendall(b"cold\n")
                return
            if (module := module_of(env.get(ENTRYPOINT_ENV, ""), cwd)) is not None:
                self.warm(module)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self.selector.close()
                self.listener.close()
                run_engine(self.module, conn, fds, env, cwd)  # never returns
            conn.sendall(f"pid {pid}\n".encode())
        except (OSError, ValueError, KeyError) as exc:  # a client gone or confused: not ours
            logger.warning("a run's start request failed (%s); it starts cold", exc)
            with contextlib.suppress(OSError):
                conn.sendall(b"cold\n")
        finally:
            for fd in fds:
                os.close(fd)


def run_engine(
    module: str, conn: socket.socket, fds: list[int], env: dict[str, str], cwd: str
) -> None:
    """In the forked child: become the run's engine as `python -m prefect.engine` would be,
    then exit the way an interpreter does, and tell the run's process the code."""
    code = 1
    try:
        os.setsid()  # as the run's process: a worker stopped with its group leaves the run
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the one disposition the server changed
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv[1:] = []
        sys.path[0] = cwd
        if "prefect.context" in sys.modules:  # Prefect's settings from the run's environment
            sys.modules["prefect.context"].refresh_global_settings_context()
        conn.settimeout(None)
        threading.Thread(target=die_with_caller, args=(conn,), daemon=True).start()
        code = run_module(module)
        threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter does at exit
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code)


def run_module(module: str) -> int:
    """`module` run as __main__, its exit code as the interpreter would give it."""
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def die_with_caller(conn: socket.socket) -> None:
    """The run's process gone (killed, SIGKILL included): the engine goes too, as it did when it
    was that process."""
    with contextlib.suppress(OSError):
        while conn.recv(64):
            pass
    os.kill(os.getpid(), signal.SIGKILL)


class ServerProcess:
    """A worker's engine server, started again at the next run if it has died (an operator's
    kill, the OOM killer): meanwhile runs start cold."""

    def __init__(self, directory: Path, env: dict[str, str], flows: tuple[str, ...] = ()) -> None:
        self.socket_path = directory / "engines.sock"
        self.env = env
        self.preload = (*PRELOAD, *flows)  # its flows at once: no step in its memory later
        self.process = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", __spec__.name, "--socket", str(self.socket_path)]
        command += [arg for module in self.preload for arg in ("--preload", module)]
        return subprocess.Popen(command, cwd=ROOT, env=self.env)

    def ensure_running(self) -> None:
        if (code := self.process.poll()) is not None:
            logger.warning("the engine server exited (code %s); starting another", code)
            self.process = self.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(prog="python -m deployments.engine_server")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--module", default=ENGINE_MODULE, help="what a run executes")
    parser.add_argument("--preload", action="append", help=f"imported first; {PRELOAD}")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        EngineServer(args.socket, args.module, tuple(args.preload or PRELOAD)).serve()


if __name__ == "__main__":
    main()
