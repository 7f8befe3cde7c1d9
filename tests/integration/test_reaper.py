"""bench/reaper.py: when a benchmark dies by SIGKILL, whatever its stack started (in sessions of
their own, Redis included) is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

# A benchmark in miniature: the reaper on a pipe, then processes in sessions of their own that
# carry the mark (one a Redis, whose process title would hide its environment), then it waits.
BENCHMARK = """
import os, subprocess, sys, time
mark = sys.argv[1]
reaper = subprocess.Popen([sys.executable, sys.argv[2], mark], stdin=subprocess.PIPE,
                          start_new_session=True)
env = {**os.environ, mark.split("=")[0]: mark.split("=")[1]}
started = [
    subprocess.Popen(["sleep", "300"], env=env, start_new_session=True),
    subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sys.argv[3], "--save", "",
                      "--set-proc-title", "no"], env=env, start_new_session=True,
                     stdout=subprocess.DEVNULL),
]
print(*[p.pid for p in started], flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_what_a_killed_benchmark_started_is_stopped(tmp_path):
    mark = f"BENCH_STACK={uuid.uuid4().hex}"
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCHMARK, mark, str(BENCH / "reaper.py"), str(tmp_path / "sock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids = [int(p) for p in bench.stdout.readline().split()]
    time.sleep(0.5)  # Redis is up
    assert all(alive(p) for p in pids)
    os.kill(bench.pid, signal.SIGKILL)
    bench.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left
