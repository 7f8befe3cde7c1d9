"""Every Prefect API call the control plane makes: pools and limits, the document runs, the
rebalance's clean-up of its own old runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import TERMINAL_STATES, FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed, Scheduled

from tasks.control.planning import Limits, idempotency_key, run_name
from tasks.control.pools import (
    DOCUMENT_DEPLOYMENTS,
    OCR_ACTE,
    OCR_INDEX,
    OCR_POOL,
    POOL_QUEUES,
    REGISTRE_POOL,
    Deployment,
    DocumentDeployment,
)
from tasks.failures import ConfigError
from tasks.queue.jobs import Claimable

logger = logging.getLogger(__name__)

# A run in these states has a document or will take one: it fills a slot.
ACTIVE = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.CANCELLING,
    StateType.PAUSED,
]
PAGE = 200  # the server's default page size


class PoolTypeMismatch(ConfigError):
    """A pool exists with another worker type; Prefect cannot change a pool's type."""


def ensure_pools(
    client: SyncPrefectClient, templates: dict[str, dict[str, Any]], pool_type: str = "process"
) -> list[str]:
    """Create the work pools (of `pool_type`) and queues that are missing (limits 0 until a
    rebalance gives them their share) and refresh every pool's base job template. Returns what
    was created; PoolTypeMismatch, before any change, if a pool exists with another type."""
    existing_types = {}
    for pool in POOL_QUEUES:
        with suppress(ObjectNotFound):
            existing_types[pool] = client.read_work_pool(pool).type
    wrong = {p: t for p, t in existing_types.items() if t != pool_type}
    if wrong:
        found = ", ".join(f"{p} is of type {t!r}" for p, t in wrong.items())
        raise PoolTypeMismatch(
            f"work pools of type {pool_type!r} wanted, but {found}, and Prefect cannot change"
            " a pool's type: stop their workers, delete them (`prefect work-pool delete NAME`)"
            " and deploy again"
        )
    created = []
    for pool, queues in POOL_QUEUES.items():
        limit = None if pool not in (REGISTRE_POOL, OCR_POOL) else 0
        if pool in existing_types:
            client.update_work_pool(pool, WorkPoolUpdate(base_job_template=templates[pool]))
        else:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type=pool_type,
                    base_job_template=templates[pool],
                    concurrency_limit=limit,
                )
            )
            created.append(f"pool {pool}")
        existing = {q.name for q in client.read_work_queues(work_pool_name=pool)}
        for queue in queues:
            if queue not in existing:
                client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=limit)
                created.append(f"queue {pool}/{queue}")
    return created


class Orchestrator:
    """The document deployments' runs and the limits of their pools, and the clean-up of a
    deployment's old runs, through one client."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self.client = client
        self._ids: dict[Deployment, UUID] = {}

    def deployment_id(self, deployment: Deployment) -> UUID:
        if deployment not in self._ids:
            self._ids[deployment] = self.client.read_deployment_by_name(deployment.full_name).id
        return self._ids[deployment]

    def _deployments(self) -> dict[UUID, DocumentDeployment]:
        return {self.deployment_id(d): d for d in DOCUMENT_DEPLOYMENTS}

    def runs(self, states: list[StateType], ids: Iterable[str] | None = None) -> list[FlowRun]:
        """The document deployments' runs in `states` (and among `ids`, if given)."""
        ids = None if ids is None else [UUID(i) for i in ids]
        if ids == []:
            return []
        found: list[FlowRun] = []
        while True:
            page = self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
                    id=FlowRunFilterId(any_=ids) if ids else None,
                ),
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=list(self._deployments()))
                ),
                limit=PAGE,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < PAGE:
                return found

    def active_runs(self) -> dict[DocumentDeployment, list[FlowRun]]:
        by_id = self._deployments()
        active: dict[DocumentDeployment, list[FlowRun]] = {d: [] for d in DOCUMENT_DEPLOYMENTS}
        for run in self.runs(ACTIVE):
            active[by_id[run.deployment_id]].append(run)
        return active

    def deployment_of(self, run: FlowRun) -> DocumentDeployment:
        return self._deployments()[run.deployment_id]

    def last_completed(self, deployment: DocumentDeployment) -> datetime | None:
        """When the deployment's latest Completed run ended (None: none is left)."""
        runs = self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[self.deployment_id(deployment)])
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
        return runs[0].end_time if runs else None

    def create_run(self, deployment: DocumentDeployment, row: Claimable) -> FlowRun:
        """The document's run (or the one already created for this version of the row)."""
        return self.client.create_flow_run_from_deployment(
            self.deployment_id(deployment),
            parameters={"env": row.env, "job_id": row.id},
            name=run_name(deployment, row),
            tags=[f"env:{row.env}", f"source:{row.source}"],
            idempotency_key=idempotency_key(deployment, row),
        )

    def reschedule(self, run: FlowRun, why: str) -> None:
        """Run a finished run again, as the UI's Retry does: same id, same parameters."""
        self.client.set_flow_run_state(run.id, Scheduled(message=why), force=True)

    def mark_crashed(self, run: FlowRun, why: str) -> None:
        self.client.set_flow_run_state(run.id, Crashed(message=why), force=True)

    def limits(self) -> dict[str, int | None]:
        """The limits in force in Prefect, under the names of Limits.as_json()."""
        index = self.client.read_work_queue_by_name(OCR_INDEX.queue, work_pool_name=OCR_POOL)
        acte = self.client.read_work_queue_by_name(OCR_ACTE.queue, work_pool_name=OCR_POOL)
        return {
            "registre": self.client.read_work_pool(REGISTRE_POOL).concurrency_limit,
            "ocr": self.client.read_work_pool(OCR_POOL).concurrency_limit,
            "index": index.concurrency_limit,
            "acte": acte.concurrency_limit,
        }

    def apply_limits(self, limits: Limits) -> dict[str, tuple[int | None, int]]:
        """Set the pool and queue limits that differ from `limits`; returns {name: (was, now)}."""
        wanted = limits.as_json()
        changed = {k: (v, wanted[k]) for k, v in self.limits().items() if v != wanted[k]}
        for pool in ("registre", "ocr"):
            if pool in changed:
                self.client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=wanted[pool]))
        for deployment in (OCR_INDEX, OCR_ACTE):
            if deployment.queue in changed:
                queue = self.client.read_work_queue_by_name(
                    deployment.queue, work_pool_name=OCR_POOL
                )
                self.client.update_work_queue(queue.id, concurrency_limit=wanted[deployment.queue])
        if changed:
            logger.info(
                "Prefect limits changed: %s", {k: f"{a} -> {b}" for k, (a, b) in changed.items()}
            )
        return changed

    def delete_ended_runs(self, deployment: Deployment, ended_before: datetime, limit: int) -> int:
        """Delete up to `limit` of the deployment's runs that ended before `ended_before`, with
        their artifacts, which the server keeps; it deletes their task runs (foreign key) and,
        since Prefect 3.4.9, their logs. Returns how many runs went."""
        try:
            deployment_id = self.deployment_id(deployment)
        except ObjectNotFound:
            return 0
        runs = self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(TERMINAL_STATES))),
                end_time=FlowRunFilterEndTime(before_=ended_before),
            ),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=limit,
        )
        if not runs:
            return 0
        # artifacts first: once its run is gone, nothing would find an artifact again
        of_runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]))
        while artifacts := self.client.read_artifacts(artifact_filter=of_runs, limit=PAGE):
            for artifact in artifacts:
                with suppress(ObjectNotFound):  # another clean-up was first
                    self.client.delete_artifact(artifact.id)
        deleted = 0
        for run in runs:
            with suppress(ObjectNotFound):
                self.client.delete_flow_run(run.id)
                deleted += 1
        return deleted
