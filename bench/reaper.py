"""Stops a benchmark's stack when the benchmark ends, however it ends (SIGKILL by a timeout
included): `python bench/reaper.py MARK` waits for EOF on its stdin, a pipe whose only writer is
the benchmark, then SIGTERMs every process whose environment holds MARK (`BENCH_STACK=<id>`,
inherited by every descendant: the Prefect server, the hosts, their workers and runs, Chromium,
the stand-ins, Redis), and SIGKILLs what is left after a grace period.

PR_SET_PDEATHSIG would not do: it is not inherited across fork, and the hosts, the server and the
flow runs move to sessions of their own, so a process group would miss them too.

Standard library only: it must start fast and outlive a broken environment."""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path

GRACE_S = 10.0


def pids_with(marker: bytes) -> list[int]:
    """Processes whose environment holds `marker` (e.g. b"REGISTRE_HOST_ID=a"), this one aside."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def sweep(marker: bytes, grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every marked process, SIGKILL those left after `grace_s`; returns the pids."""
    found = [pid for pid in pids_with(marker) if alive(pid)]
    for pid in found:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in found):
        time.sleep(0.2)
    for pid in found:
        if alive(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return found


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the benchmark, not us
    marker = sys.argv[1].encode()
    while sys.stdin.buffer.read(4096):
        pass  # the benchmark never writes; EOF is the news
    left = sweep(marker)
    if left:
        print(
            f"reaper: stopped {len(left)} process(es) the benchmark left: {left}", file=sys.stderr
        )


if __name__ == "__main__":
    main()
