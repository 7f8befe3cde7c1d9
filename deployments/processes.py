"""What a `registre` command started, wherever it went. Each process it starts carries a mark in
its environment, inherited by every descendant whatever session or process group it moves to
(the Prefect server, workers and runs, Playwright's driver, Chromium and its crash handler), so
the command that set the mark can find and stop whatever is left when it ends."""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

logger = logging.getLogger(__name__)

MARK = "REGISTRE_PROCESS_TREE"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SWEEP_GRACE_S = 10.0  # what is left gets SIGTERM, then SIGKILL after this


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (finished, not yet reaped) is gone for our purpose."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def kill_group(pid: int, signum: int) -> None:
    """Signal the process group `pid` leads (every process started with its own session leads
    one), whether or not its leader is still there."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def pids_with(needle: bytes) -> list[int]:
    """The live processes, this one aside, whose environment holds `needle` (b"NAME=value")."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's
            continue
        if needle in environ and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def marked(mark: str) -> list[int]:
    """The live processes, this one aside, whose environment carries `mark`."""
    return pids_with(f"{MARK}={mark}".encode())


def stop_all(pids: list[int], grace_s: float = SWEEP_GRACE_S) -> list[int]:
    """SIGTERM each of `pids`, SIGKILL those left after `grace_s`; returns `pids`."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pids


def stop_marked(mark: str, grace_s: float = SWEEP_GRACE_S) -> list[int]:
    """Stop every process still carrying `mark` (stop_all); returns the pids found."""
    return stop_all(marked(mark), grace_s)


@contextmanager
def process_tree() -> Iterator[None]:
    """Mark what is started inside; at the end, stop what of it is still running. A command run
    by another `registre` process (`registre up` under the local stand-ins) leaves that to the
    outermost one, which may still need its own processes (the stand-ins) meanwhile."""
    if os.environ.get(MARK):
        yield
        return
    mark = uuid.uuid4().hex
    os.environ[MARK] = mark
    try:
        yield
    finally:
        del os.environ[MARK]
        left = stop_marked(mark)
        if left:
            logger.warning("stopped %d process(es) left running: pids %s", len(left), left)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt this process as Ctrl-C does (KeyboardInterrupt), so the
    `with` blocks around the interrupted step stop what they started. For the steps before a
    command installs its own handlers (a Prefect server starting, a deploy)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
