"""The control plane's two steps, called by the rebalance flow, the document runs' hooks and
`registre worker`: dispatch (limits from the live hosts, one run per claimable document within
the free slots) and reconcile (take back what dead runs hold)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import httpx
import redis
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import PrefectHTTPStatusError

from tasks.control.orchestration import Orchestrator
from tasks.control.planning import Limits, free_slots, plan_limits, runs_to_create
from tasks.control.pools import DOCUMENT_DEPLOYMENTS, DocumentDeployment, owner_run, run_owner
from tasks.control.spending import SpendCap, held_back, reached_caps
from tasks.coordination.capacity.leases import CapacityManager, CapacityStatus
from tasks.coordination.lua import read_script
from tasks.coordination.outages import SUPABASE, Outages, Service, prefect_service, redis_service
from tasks.coordination.redis_keys import RedisKeys
from tasks.queue.client import QueueError
from tasks.queue.jobs import Stage
from tasks.queue.table import Queue
from tasks.services import capacity_manager, cost_table, redis_client
from tasks.settings import Settings

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "cancelled from the Prefect UI"
LOCK_MS = 30_000  # a dispatcher that died holding the lock frees it after this
SETTLE_GRACE_S = 30  # a finished run's hooks get this long to settle its row before we do
FINISHED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


@dataclass
class ControlPlane:
    """The clients the control steps use, opened once per process or run."""

    settings: Settings
    queue: Queue
    redis: redis.Redis
    capacity: CapacityManager
    orchestrator: Orchestrator

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[ControlPlane]:
        client = redis_client(settings)
        try:
            with get_client(sync_client=True) as prefect:
                yield cls(
                    settings,
                    Queue(settings),
                    client,
                    capacity_manager(settings, client),
                    Orchestrator(prefect),
                )
        finally:
            client.close()

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_key_prefix)


@dataclass
class Picture:
    """What a dispatch saw and did, for logs and the rebalance artifact."""

    capacity: CapacityStatus
    waiting: dict[str, int]  # per deployment flow name
    waiting_by_env: dict[str, dict[str, int]]
    limits: Limits
    limits_changed: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    capped: dict[str, list[SpendCap]] = field(default_factory=dict)  # per env, caps reached


def waiting_documents(queue: Queue) -> dict[str, dict[str, int]]:
    """Claimable rows per environment and deployment flow name."""
    s = queue.statuses
    found: dict[str, dict[str, int]] = {}
    for env, counts in queue.counts(claimable=True).items():
        per = found.setdefault(env, {d.flow: 0 for d in DOCUMENT_DEPLOYMENTS})
        for (status, source), rows in counts.items():
            for d in DOCUMENT_DEPLOYMENTS:
                wanted = s.waiting if d.stage is Stage.REGISTRE else s.ready_for_ocr
                if status == wanted and (d.sources is None or source in d.sources):
                    per[d.flow] += rows
    return found


def plan(cp: ControlPlane) -> Picture:
    s = cp.settings
    state = cp.capacity.status()
    by_env = waiting_documents(cp.queue)
    anything = any(n for waiting in by_env.values() for n in waiting.values())
    capped = reached_caps(cp.queue, s, datetime.now(UTC).date()) if anything else {}
    waiting = {  # a capped environment's rows wait: no slot is planned for them
        d.flow: sum(w[d.flow] for e, w in by_env.items() if e not in held_back(capped, d.stage))
        for d in DOCUMENT_DEPLOYMENTS
    }
    limits = plan_limits(
        state.hosts,
        state.runs,
        cost_table(s),
        index_waiting=waiting["ocr-index"],
        acte_waiting=waiting["ocr-acte"],
        min_index=s.ocr_min_index_workers,
        min_acte=s.ocr_min_acte_workers,
    )
    return Picture(state, waiting, by_env, limits, capped=capped)


def apply_limits(cp: ControlPlane, limits: Limits, *, verify: bool) -> dict:
    """Bring Prefect's limits and `worker_pool:allocation` to `limits`. Without `verify`, trust
    the record of the last change and call Prefect only when the plan moved."""
    record = json.dumps(limits.as_json(), sort_keys=True)
    if not verify and cp.redis.get(cp.keys.pool_limits) == record.encode():
        return {}
    changed = cp.orchestrator.apply_limits(limits)
    pipe = cp.redis.pipeline()
    pipe.set(cp.keys.pool_limits, record)
    pipe.set(cp.keys.pool_allocation, json.dumps(limits.split.as_json()))
    pipe.execute()
    return changed


@contextmanager
def dispatch_lock(cp: ControlPlane, wait_s: float = 0) -> Iterator[bool]:
    """One dispatcher at a time over every host. A caller that finds it taken (for `wait_s`)
    leaves a note so the holder dispatches once more (the slot it freed is then seen)."""
    token = uuid.uuid4().hex
    lock, again = cp.keys.dispatch_lock, cp.keys.dispatch_again
    deadline = time.monotonic() + wait_s
    while not cp.redis.set(lock, token, nx=True, px=LOCK_MS):
        if time.monotonic() >= deadline:
            cp.redis.set(again, 1, px=LOCK_MS)
            yield False
            return
        time.sleep(0.2)
    try:
        yield True
    finally:
        cp.redis.eval(read_script("dispatch_unlock"), 1, lock, token)


def dispatch(cp: ControlPlane, *, verify: bool = False, wait_s: float = 0) -> Picture | None:
    """Set the limits from the live hosts, then create a run for each claimable document that
    has none, within the free slots. None when another process is dispatching."""
    with dispatch_lock(cp, wait_s) as mine:
        if not mine:
            return None
        for _ in range(3):  # again while someone asked during the pass
            cp.redis.delete(cp.keys.dispatch_again)
            picture = _dispatch_once(cp, verify=verify)
            if not cp.redis.exists(cp.keys.dispatch_again):
                break
        return picture


def _dispatch_once(cp: ControlPlane, *, verify: bool) -> Picture:
    picture = plan(cp)
    picture.limits_changed = apply_limits(cp, picture.limits, verify=verify)
    active = cp.orchestrator.active_runs()
    picture.active = {d.flow: len(runs) for d, runs in active.items()}
    busy = {
        (r.parameters.get("env"), r.parameters.get("job_id"))
        for runs in active.values()
        for r in runs
    }
    free = free_slots(picture.limits, {d: len(runs) for d, runs in active.items()})
    for deployment in DOCUMENT_DEPLOYMENTS:
        if free[deployment] <= 0 or not picture.waiting[deployment.flow]:
            continue
        rows = cp.queue.claimable(
            deployment.stage,
            deployment.sources,
            free[deployment] + len(active[deployment]),
            skip=held_back(picture.capped, deployment.stage),
        )
        for row in runs_to_create(rows, busy, free[deployment]):
            run = cp.orchestrator.create_run(deployment, row)
            if run.state and run.state.is_final():
                _seen_before(cp, deployment, run)
            picture.created.append(run.name)
    if picture.created:
        logger.info("dispatched %s", ", ".join(picture.created))
    return picture


def _seen_before(cp: ControlPlane, deployment: DocumentDeployment, run: FlowRun) -> None:
    """This version of the row already had its run, and it ended without touching the row
    (no capacity, or it died before claiming): run it again, unless an operator cancelled it."""
    env, job_id = run.parameters["env"], run.parameters["job_id"]
    if run.state.type is StateType.CANCELLED:
        owner = run_owner(deployment.flow, run.id)
        cp.queue.cancel(env, job_id, owner, deployment.stage, CANCELLED_MESSAGE)
        logger.warning("%s: its run was cancelled before it started; row set to error", run.name)
    else:
        cp.orchestrator.reschedule(run, f"the document is still waiting (was {run.state.name})")


class Ending(StrEnum):
    """How a run ended without settling its row, which decides the row's fate."""

    CRASHED = "crashed"  # back to the queue, one attempt counted (it may be the document)
    CANCELLED = "cancelled"  # the operator's decision: error, and it stays there
    STOPPED = "stopped"  # its host was stopped: back to the queue, no attempt counted


def settle_dead_run(
    cp: ControlPlane,
    deployment: DocumentDeployment,
    run_id: str,
    env: str,
    job_id: str,
    ending: Ending,
    why: str,
) -> None:
    """A run ended without settling its row: give its capacity back, then its row. A crash
    its host caused (see `stopping`) counts as the host's stop, whoever settles first."""
    owner = run_owner(deployment.flow, run_id)
    cp.capacity.release_id(owner)
    if ending is Ending.CRASHED and stopped_by_its_host(cp.redis, cp.keys, run_id):
        ending = Ending.STOPPED
    if ending is Ending.CANCELLED:
        cp.queue.cancel(env, job_id, owner, deployment.stage, CANCELLED_MESSAGE)
    elif ending is Ending.STOPPED:
        cp.queue.release_held(env, job_id, owner, deployment.stage, why)
    else:
        cp.queue.fail_held(env, job_id, owner, deployment.stage, why, permanent=False)


def stopping(cp: ControlPlane, run_ids: Iterable[str], ttl_s: int = 600) -> None:
    """Record that a host is about to stop these runs, so that their crash hooks, or the runs
    themselves when the stop breaks their work first, give their rows back uncounted."""
    pipe = cp.redis.pipeline()
    for run_id in run_ids:
        pipe.set(cp.keys.run_stopped(run_id), 1, ex=ttl_s)
    pipe.execute()


def stopped_by_its_host(client: redis.Redis, keys: RedisKeys, run_id: str) -> bool:
    """Whether the run's host said it is stopping it (`stopping`)."""
    return bool(client.exists(keys.run_stopped(run_id)))


def stopped_message(host_id: str) -> str:
    """What the row of a run its host stopped says."""
    return f"host {host_id} stopped during the run"


def reconcile(cp: ControlPlane) -> list[str]:
    """Take back what hooks could not: rows whose lease expired, runs that stopped heartbeating
    (marked Crashed to free their pool slot), and rows held by runs Prefect reports finished.
    Returns (and logs) one line per thing taken back."""
    now = datetime.now(UTC)
    done = [*take_back_expired_rows(cp), *crash_silent_runs(cp, now), *settle_orphans(cp, now)]
    for line in done:
        logger.warning(line)
    return done


def take_back_expired_rows(cp: ControlPlane) -> list[str]:
    return [
        f"{env}: row {row['id']} lease expired, taken back"
        for env, rows in cp.queue.recover_expired().items()
        for row in rows
    ]


def crash_silent_runs(cp: ControlPlane, now: datetime) -> list[str]:
    """Mark Crashed the active runs without a capacity lease for longer than a lease lasts."""
    leases = {str(w["workerId"]) for w in cp.capacity.status().workers}
    grace_s = cp.settings.capacity_lease_seconds
    leased, unleased = set(), []
    for run in cp.orchestrator.runs([StateType.PENDING, StateType.RUNNING]):
        if run_owner(cp.orchestrator.deployment_of(run).flow, run.id) in leases:
            leased.add(str(run.id))
        else:
            unleased.append(run)
    forget_unleased(cp, leased)
    seen = first_seen_unleased(cp, [str(run.id) for run in unleased], now)
    done = []
    for run in unleased:
        started = run.state.timestamp if run.state else run.created
        if (now - max(started, seen[str(run.id)])).total_seconds() < grace_s:
            continue
        why = f"no heartbeat for {grace_s:g} s (its capacity lease expired): the run's process died"
        cp.orchestrator.mark_crashed(run, why)
        done.append(f"{run.name}: marked Crashed, {why}")
    return done


def first_seen_unleased(cp: ControlPlane, run_ids: list[str], now: datetime) -> dict[str, datetime]:
    """When each run was first seen without a capacity lease (now, for one not seen before). A
    live run puts its lease back within a renewal (Redis restarted empty, say), so only a lease
    missing that long is a death."""
    ttl_s = int(10 * cp.settings.capacity_lease_seconds)
    with cp.redis.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.set(cp.keys.run_unleased(run_id), now.isoformat(), nx=True, ex=ttl_s)
            pipe.get(cp.keys.run_unleased(run_id))
        answers = pipe.execute()[1::2]
    return {
        run_id: datetime.fromisoformat(seen.decode()) if seen else now
        for run_id, seen in zip(run_ids, answers, strict=True)
    }


def forget_unleased(cp: ControlPlane, run_ids: set[str]) -> None:
    """These runs hold a lease again: a later loss starts its grace from zero."""
    if run_ids:
        cp.redis.delete(*(cp.keys.run_unleased(run_id) for run_id in run_ids))


def settle_orphans(cp: ControlPlane, now: datetime) -> list[str]:
    """Settle the rows still held by runs that ended (Cancelled, Crashed...) without writing."""
    held = {}
    for row in cp.queue.held():
        found = owner_run(row.owner)
        if found:
            held[found[1]] = (row, found[0])
    done = []
    for run_id, run in {
        str(r.id): r for r in cp.orchestrator.runs(FINISHED, ids=list(held))
    }.items():
        if run.state and (now - run.state.timestamp).total_seconds() < SETTLE_GRACE_S:
            continue  # its hooks (or its host) are settling it, and know how it ended
        row, deployment = held[run_id]
        cancelled = run.state.type is StateType.CANCELLED
        ending = Ending.CANCELLED if cancelled else Ending.CRASHED
        why = f"the run {run.name} ended {run.state.name} without writing its result"
        settle_dead_run(cp, deployment, run_id, row.env, row.id, ending, why)
        done.append(f"{row.env}: row {row.id} taken back from {run.name} ({run.state.name})")
    return done


def service_of(exc: BaseException, cp: ControlPlane) -> Service | None:
    """The service a failed dispatch says is down; None for any other error (a bug)."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return redis_service(cp.redis)
    if isinstance(exc, QueueError):
        return SUPABASE
    if isinstance(exc, httpx.TransportError | PrefectHTTPStatusError):
        return prefect_service()
    return None


def dispatch_until(cp: ControlPlane, every_s: float, stop: threading.Event) -> None:
    """`registre worker`'s loop: a new document starts within seconds when a slot is free."""
    outages = Outages("dispatch", logger)
    while not stop.wait(every_s):
        try:
            dispatch(cp)
        except Exception as exc:  # a service down must not stop the host, nor fill its log
            outages.failed(exc, service_of(exc, cp))
        else:
            outages.answered()
