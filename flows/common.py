"""What every document run does around its work, written once: reserve the run's capacity,
claim exactly its document, hold the lease while the work runs, settle a failure; and the hooks
that free everything when a run ends, however it ends."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from prefect import Flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run as this_run
from prefect.states import Completed, State

from tasks.control.dispatch import (
    ControlPlane,
    Ending,
    dispatch,
    settle_dead_run,
    stopped_by_its_host,
    stopped_message,
)
from tasks.control.pools import BY_FLOW, DocumentDeployment, run_owner
from tasks.control.spending import reached_caps
from tasks.coordination.capacity.leases import CapacityExceeded
from tasks.coordination.redis_keys import RedisKeys
from tasks.failures import Fate, Verdict, decide
from tasks.queue.jobs import Job
from tasks.queue.row_lease import LeaseKeeper
from tasks.queue.table import LeaseLost, Queue
from tasks.services import capacity_manager, redis_client, settings_budget
from tasks.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def settle_failure(
    queue: Queue, job: Job, exc: Exception, base_s: int
) -> tuple[Verdict, dict[str, Any] | None]:
    """Decide the row's fate from what the run raised (tasks/failures.py) and write it; returns
    the verdict and the row as left (None when the lease was already lost)."""
    verdict = decide(exc, attempts=job.attempts, base_s=base_s)
    if verdict.fate is Fate.WAIT:
        return verdict, queue.release(job, verdict.message, retry_delay_seconds=verdict.delay_s)
    permanent, delay = verdict.fate is Fate.ERROR, verdict.delay_s
    return verdict, queue.fail(job, verdict.message, permanent=permanent, retry_delay_seconds=delay)


def skipped(why: str) -> State:
    """The run's end when it had nothing to do: Completed, named so the UI says so."""
    get_run_logger().info("skipped: %s", why)
    return Completed(name="Skipped", message=why)


@dataclass
class DocumentRun:
    """What one document run holds: its settings and clients (opened once for the run), and
    the row it claimed with its lease."""

    settings: Settings
    queue: Queue
    redis: redis.Redis
    job: Job | None = None
    lease: LeaseKeeper | None = None
    skipped: State | None = None


@contextmanager
def document_run(
    deployment: DocumentDeployment,
    env: str,
    job_id: str,
) -> Iterator[DocumentRun]:
    """Reserve, claim `job_id`, lease, then the body's work; a failure of the work is settled on
    the row (settle_failure; given back uncounted when its host is stopping the run), then
    re-raised. `run.skipped` is set instead of `run.job` when a spend cap holds the stage back,
    there is no room or the row is not claimable."""
    settings = load_settings()
    run_id = this_run.get_id()
    owner = run_owner(deployment.flow, run_id or f"{socket.gethostname()}:{uuid.uuid4()}")
    with ExitStack() as stack:
        run = DocumentRun(settings, Queue(settings), stack.enter_context(redis_client(settings)))
        if (this_run.run_count or 1) > 1 and run.queue.requeue(env, job_id, deployment.stage):
            get_run_logger().info("retry: row %s was in error, put back in the queue", job_id)
        today = datetime.now(UTC).date()
        caps = reached_caps(run.queue.only(env), settings, today).get(env, [])
        if cap := next((c for c in caps if c.stage is deployment.stage), None):
            run.skipped = skipped(cap.message)  # created before the cap was reached: no claim
            yield run
            return
        capacity = capacity_manager(settings, run.redis)
        try:
            # this run's cost on its host's budget for the run's length; no room: no claim
            stack.enter_context(
                capacity.hold(deployment.kind, worker_id=owner, host_id=settings.host_id())
            )
        except CapacityExceeded as exc:
            run.skipped = skipped(f"no capacity: {exc}")
            yield run
            return
        jobs = run.queue.claim(
            deployment.stage, 1, owner, deployment.sources, env=env, job_id=job_id
        )
        if not jobs:
            run.skipped = skipped(run.queue.why_not_claimable(env, job_id, deployment.stage))
            yield run
            return
        run.job = jobs[0]
        run.lease = stack.enter_context(LeaseKeeper(run.queue, run.job))
        try:
            yield run
        except LeaseLost:
            raise  # the row is another run's now: nothing of ours to write
        except Exception as exc:
            keys = RedisKeys(settings.redis_key_prefix)
            if run_id and stopped_by_its_host(run.redis, keys, run_id):
                # the stop broke the work (a browser closed under it): not the document's doing
                why = stopped_message(settings.host_id())
                run.queue.release(run.job, why, retry_delay_seconds=0)
                get_run_logger().warning("%s: %s (%s); row given back", run.job.label, why, exc)
                raise
            base_s = run.settings.retry_base_seconds
            verdict, row = settle_failure(run.queue, run.job, exc, base_s)
            get_run_logger().error(
                "%s: %s; row now in status %s", run.job.label, verdict.message,
                row and row["status_id"],
            )  # fmt: skip
            raise


@contextmanager
def this_host_registered(settings: Settings) -> Iterator[str]:
    """For a run started by hand (no worker registered this host): offer the host's budget."""
    host = settings.host_id()
    with redis_client(settings) as client:
        manager = capacity_manager(settings, client)
        if host in manager.status().hosts:  # a worker runs here: leave its heartbeat be
            yield host
            return
        with manager.host_registered(host, settings_budget(settings)):
            yield host


def _quietly(what: str, step: Callable[[ControlPlane], object]) -> None:
    """Hooks must not fail a run that did its work: the rebalance flow repeats what they miss."""
    try:
        with ControlPlane.open(load_settings()) as cp:
            step(cp)
    except Exception:
        logger.warning("%s failed; the next rebalance will do it", what, exc_info=True)


def refill_slot(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """on_completion / on_failure: the run settled its row; start the next document now (and a
    finished download's OCR run)."""
    _quietly("dispatch after the run", dispatch)


def free_dead_run(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """on_crashed / on_cancellation (run by the worker when it killed or lost the run's
    process): give back the run's capacity and row, then refill the slot. A cancel is the
    operator's decision: the row goes to error and stays there."""
    # Prefect calls hooks with these keyword names
    run, deployment = flow_run, BY_FLOW[flow.name]
    env, job_id = run.parameters["env"], run.parameters["job_id"]

    def settle(cp: ControlPlane) -> None:
        now = cp.orchestrator.client.read_flow_run(run.id).state
        cancelled = any(
            s is not None and (s.is_cancelled() or s.is_cancelling()) for s in (state, now)
        )
        ending = Ending.CANCELLED if cancelled else Ending.CRASHED
        why = f"the run {run.name} crashed: {state.message or state.name}"
        settle_dead_run(cp, deployment, str(run.id), env, job_id, ending, why)
        dispatch(cp)

    _quietly(f"freeing {run.name}", settle)


HOOKS: dict[str, Any] = {
    "on_completion": [refill_slot],
    "on_failure": [refill_slot],
    "on_crashed": [free_dead_run],
    "on_cancellation": [free_dead_run],
}
