"""Stops a benchmark's stack when the benchmark ends, however it ends (SIGKILL by a timeout
included): `python bench/reaper.py MARK` waits for EOF on its stdin, a pipe whose only writer is
the benchmark, then SIGTERMs every process whose environment holds MARK (`BENCH_STACK=<id>`,
inherited by every descendant: the Prefect server, the hosts, their workers and runs, Chromium,
the stand-ins, Redis), and SIGKILLs what is left after a grace period.

PR_SET_PDEATHSIG would not do: it is not inherited across fork, and the hosts, the server and the
flow runs move to sessions of their own, so a process group would miss them too.

It imports nothing but the standard library and deployments/processes.py (which imports nothing
else): it must start fast and outlive a broken environment."""

from __future__ import annotations

import signal
import sys

from deployments.processes import pids_with, stop_all

GRACE_S = 10.0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the benchmark, not us
    marker = sys.argv[1].encode()
    while sys.stdin.buffer.read(4096):
        pass  # the benchmark never writes; EOF is the news
    left = stop_all(pids_with(marker), GRACE_S)
    if left:
        print(
            f"reaper: stopped {len(left)} process(es) the benchmark left: {left}", file=sys.stderr
        )


if __name__ == "__main__":
    main()
