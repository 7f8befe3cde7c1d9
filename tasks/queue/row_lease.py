from __future__ import annotations

import logging
import threading
from types import TracebackType

from tasks.queue.jobs import Job
from tasks.queue.table import LeaseLost, Queue

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a claimed job's lease from a background thread while the work runs.

    A run that dies stops renewing, so its row is taken back once the lease expires. If the lease
    is lost anyway (a long network outage), `lost` is set and the final write will be refused.
    """

    def __init__(self, queue: Queue, job: Job, interval_seconds: float | None = None) -> None:
        self.queue = queue
        self.job = job
        self.interval = interval_seconds or max(1.0, queue.lease_seconds / 3)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.queue.renew(self.job)
            except LeaseLost:
                logger.error("%s: lease lost while working", self.job.label)
                self.lost.set()
                return
            except Exception as exc:  # Supabase unreachable: try again at the next beat
                logger.warning("%s: lease renewal failed: %s", self.job.label, exc)

    def check(self) -> None:
        """Raise LeaseLost once the lease is gone: the row may be another run's by now, so the
        work should stop rather than be done twice."""
        if self.lost.is_set():
            raise LeaseLost(f"{self.job.label}: lease lost while working")

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
