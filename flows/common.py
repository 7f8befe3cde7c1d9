from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from prefect import get_client
from prefect.runtime import flow_run

from tasks.capacity import CapacityManager, Lease, WorkerKind, settings_budget
from tasks.queue import Job, Queue, Stage
from tasks.settings import Settings

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 60  # after a transient failure: 1, 2, 4... minutes, capped
RETRY_MAX_SECONDS = 15 * 60


class Failure(StrEnum):
    """Who a failure belongs to, which decides what happens to the row."""

    PERMANENT = "permanent"  # the document itself: straight to error
    DOCUMENT = "document"  # maybe passing, maybe the document: one attempt counted, retried later
    SERVICE = "service"  # a service down, no account free, a setting wrong: given back uncounted


def run_owner(stage: str) -> str:
    """The lease owner: this flow run's id, or a unique name when run outside Prefect."""
    run_id = flow_run.get_id()
    return f"{stage}:{run_id}" if run_id else f"{stage}:{socket.gethostname()}:{uuid.uuid4()}"


def retry_delay(attempts_so_far: int) -> int:
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempts_so_far)


def settle_failure(
    queue: Queue, job: Job, message: str, failure: Failure, delay_s: float | None = None
) -> dict[str, Any] | None:
    """Write a failed run's outcome on its row (see Failure); returns the row as left, or None
    when the lease was already lost."""
    if failure is Failure.SERVICE:
        delay = max(int(delay_s or 0), RETRY_BASE_SECONDS)
        return queue.release(job, message, retry_delay_seconds=delay)
    attempts = int(job.row.get("ocr_attempts" if job.stage is Stage.OCR else "attemtps") or 0)
    delay = 0 if failure is Failure.PERMANENT else max(int(delay_s or 0), retry_delay(attempts))
    return queue.fail(
        job, message, permanent=failure is Failure.PERMANENT, retry_delay_seconds=delay
    )


def name_run_after(job: Job) -> None:
    """Rename the running flow run after its document, so the UI lists documents, not run ids."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=f"{job.stage.value}-{job.label}")
    except Exception:  # cosmetic: never fail a document over its run's name
        logger.warning("could not rename flow run %s", run_id, exc_info=True)


@contextmanager
def capacity_reserved(settings: Settings, kind: WorkerKind, owner: str) -> Iterator[Lease]:
    """Hold this run's cost on this host's budget for the run's length (CapacityExceeded if
    there is no room: the run then does not claim anything)."""
    manager = CapacityManager.from_settings(settings)
    try:
        with manager.hold(kind, worker_id=owner, host_id=socket.gethostname()) as lease:
            yield lease
    finally:
        manager.client.close()


@contextmanager
def this_host_registered(settings: Settings) -> Iterator[str]:
    """For a run started by hand (no worker registered this host): offer the host's budget."""
    manager = CapacityManager.from_settings(settings)
    host = socket.gethostname()
    try:
        if host in manager.status().hosts:  # `registre up` runs here: leave its heartbeat be
            yield host
            return
        with manager.host_registered(host, settings_budget(settings)):
            yield host
    finally:
        manager.client.close()
