"""A Docker engine as these machines run one (PREFECT.md §15): Debian's dockerd without a bridge
or firewall rules, every container on the host's network. Test equipment: the Docker pools'
tests and benchmarks start one when none answers, and stop it after."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCKERD = ["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"]


def answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@contextmanager
def engine(log_dir: Path, timeout_s: float = 60) -> Iterator[None]:
    """The machine's engine if one answers; otherwise one started here and stopped after."""
    if answers():
        yield
        return
    if shutil.which("dockerd") is None:
        raise RuntimeError("no Docker engine: `bash scripts/setup` installs docker.io")
    log = (log_dir / "dockerd.log").open("ab")
    process = subprocess.Popen(DOCKERD, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + timeout_s
        while not answers():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {log.name}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.wait(60)
