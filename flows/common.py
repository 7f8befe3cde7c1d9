from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client
from prefect.runtime import flow_run

from tasks.capacity import CapacityManager, Lease, WorkerKind, settings_budget
from tasks.queue import Job
from tasks.settings import Settings

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 60  # after a transient failure: 1, 2, 4... minutes, capped
RETRY_MAX_SECONDS = 15 * 60


def run_owner(stage: str) -> str:
    """The lease owner: this flow run's id, or a unique name when run outside Prefect."""
    run_id = flow_run.get_id()
    return f"{stage}:{run_id}" if run_id else f"{stage}:{socket.gethostname()}:{uuid.uuid4()}"


def retry_delay(attempts_so_far: int) -> int:
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempts_so_far)


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
    try:
        with manager.host_registered(socket.gethostname(), settings_budget(settings)) as host:
            yield host
    finally:
        manager.client.close()
