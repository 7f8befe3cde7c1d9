"""When `registre worker` replaces a Prefect worker: its memory grows with the runs it starts
(docs/operations.md, "Worker recycling"), so after WORKER_RECYCLE_RUNS runs or above
WORKER_RECYCLE_MB of resident memory, whichever comes first; 0 turns either off."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.settings import Settings


@dataclass(frozen=True)
class RecyclePolicy:
    runs: int  # runs started by one worker
    rss_mb: float  # its resident memory

    @classmethod
    def of(cls, settings: Settings) -> RecyclePolicy:
        return cls(settings.worker_recycle_runs, settings.worker_recycle_mb)

    def reason(self, runs_started: int, rss_mb: float) -> str | None:
        """Why a worker that started `runs_started` runs and holds `rss_mb` is due, or None."""
        if self.runs and runs_started >= self.runs:
            return f"{runs_started} runs started (WORKER_RECYCLE_RUNS={self.runs})"
        if self.rss_mb and rss_mb >= self.rss_mb:
            return f"{rss_mb:.0f} MB resident (WORKER_RECYCLE_MB={self.rss_mb:g})"
        return None


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
