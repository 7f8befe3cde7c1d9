"""Retention in the Prefect database, on real Prefect servers: the rebalance deletes its own
runs past REBALANCE_RUN_RETENTION_HOURS with their task runs, logs and artifacts, and nothing
else; the server `registre up` starts vacuums document runs and events past theirs; the
rebalance writes its artifact only when something changed."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow, get_client, task
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import ArtifactCreate, LogCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed
from pydantic import TypeAdapter

from deployments.up import prefect_server
from flows.rebalance import rebalance
from tasks.control.orchestration import Orchestrator
from tasks.control.pools import REBALANCE, REGISTRE
from tasks.coordination.capacity.budget import Budget
from tasks.services import capacity_manager, redis_client
from tasks.settings import load_settings

pytestmark = pytest.mark.slow
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how Prefect stores a UTC time in SQLite


@task
def step() -> None:
    pass


@flow
def document() -> None:
    pass


def record_run(client: SyncPrefectClient, run_id: UUID, ended_ago: timedelta) -> UUID:
    """Give a run what a real one leaves (a task run, a log line, an artifact), end it, then move
    its end back by `ended_ago` in the server's SQLite database (the API takes no timestamp)."""
    client.create_task_run(step, flow_run_id=run_id, dynamic_key="0")
    client.create_logs(
        [LogCreate(name="test", level=20, message="a line", timestamp=datetime.now(UTC),
                   flow_run_id=run_id)]
    )  # fmt: skip
    client.create_artifact(
        ArtifactCreate(key="retention-test", type="markdown", data="# a report", flow_run_id=run_id)
    )
    client.set_flow_run_state(run_id, Completed(), force=True)
    ended = datetime.now(UTC) - ended_ago
    with sqlite3.connect(Path(os.environ["PREFECT_HOME"]) / "prefect.db", timeout=30) as db:
        db.execute(
            "UPDATE flow_run SET end_time = ? WHERE id = ?",
            (ended.strftime(SQLITE_TIME), str(run_id)),
        )
    assert client.read_flow_run(run_id).end_time == ended
    return run_id


def deployment_run(
    client: SyncPrefectClient, name: str, ended_ago: timedelta, **params: Any
) -> UUID:
    deployment_id = client.read_deployment_by_name(name).id
    run = client.create_flow_run_from_deployment(deployment_id, parameters=params)
    return record_run(client, run.id, ended_ago)


def traces(client: SyncPrefectClient, run_id: UUID) -> dict[str, int]:
    """What of a run the database holds: the run itself, its task runs, logs, artifacts."""
    try:
        client.read_flow_run(run_id)
        runs = 1
    except ObjectNotFound:
        runs = 0
    task_runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))
    )
    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {
        "run": runs,
        "task_runs": len(task_runs),
        "logs": len(logs),
        "artifacts": len(artifacts),
    }


def eventually(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.5)


KEPT = {"run": 1, "task_runs": 1, "logs": 1, "artifacts": 1}
GONE = {"run": 0, "task_runs": 0, "logs": 0, "artifacts": 0}


def test_the_rebalance_deletes_its_runs_past_their_retention_and_nothing_else(system):
    """REBALANCE_RUN_RETENTION_HOURS (24 by default): the rebalance's runs that ended 25 hours
    ago go with their task runs, logs and artifacts, a bounded batch per tick; its run of 23
    hours ago stays, and so does a document run of 2 days ago (DOCUMENT_RUN_RETENTION_DAYS)."""
    with system.client() as client:
        old = [deployment_run(client, REBALANCE.full_name, timedelta(hours=25)) for _ in range(3)]
        recent = deployment_run(client, REBALANCE.full_name, timedelta(hours=23))
        params = {"env": "prod", "job_id": str(uuid.uuid4())}
        doc = deployment_run(client, REGISTRE.full_name, timedelta(days=2), **params)
        assert all(traces(client, run) == KEPT for run in [*old, recent, doc])

        cutoff = datetime.now(UTC) - timedelta(hours=24)
        assert Orchestrator(client).delete_ended_runs(REBALANCE, cutoff, limit=2) == 2  # one batch
        assert sum(traces(client, run)["run"] for run in old) == 1
    assert rebalance()["deleted"] == 1  # the flow's own tick takes the rest

    with system.client() as client:
        # the server deletes a run's logs just after the run (a background task)
        eventually(lambda: all(traces(client, run) == GONE for run in old), 30, "the old runs")
        assert traces(client, recent) == KEPT
        assert traces(client, doc) == KEPT


def published_reports() -> int:
    with get_client(sync_client=True) as client:
        rebalance_key = ArtifactFilter(key=ArtifactFilterKey(any_=["rebalance"]))
        return len(client.read_artifacts(artifact_filter=rebalance_key))


def test_the_rebalance_writes_its_report_only_when_something_changed(system):
    """A tick that sees what the last report said writes none; a new host, then its leaving,
    each write one."""
    manager = capacity_manager(load_settings(), redis_client(load_settings()))
    try:
        assert rebalance()["published"]
        before = published_reports()
        assert not rebalance()["published"]
        assert published_reports() == before

        manager.register_host("big", Budget(40, 40), {"registre": 0, "ocr": 6})
        assert rebalance()["published"]
        assert not rebalance()["published"]
        manager.unregister_host("big")
        assert rebalance()["published"]
        assert published_reports() == before + 2
    finally:
        manager.unregister_host("big")
        manager.client.close()


@pytest.fixture
def vacuuming_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server as `registre up` starts it, with a document-run retention of 1.2 hours, events
    kept 1 hour, and the operator's own vacuum loop of 5 s (which must win over ours)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS", "5")
    settings = load_settings(document_run_retention_days=0.05, event_retention_hours=1)
    with (
        prefect_server(tmp_path, port, settings=settings) as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        yield api


def test_the_server_registre_up_starts_vacuums_document_runs_and_events(vacuuming_server, tmp_path):
    """Prefect's db_vacuum on the settings `registre up` derives: a run that ended 2 hours ago
    goes with its task runs, logs and artifacts, and events older than an hour go; a run that
    ended 10 minutes ago stays."""
    found = httpx.get(f"{vacuuming_server}/admin/settings", timeout=30).json()
    vacuum = found["server"]["services"]["db_vacuum"]
    duration = TypeAdapter(timedelta).validate_python  # the API shows ISO 8601 durations
    assert set(vacuum["enabled"]) == {"events", "flow_runs"}
    assert duration(vacuum["retention_period"]) == timedelta(hours=1.2)
    assert vacuum["loop_seconds"] == 5  # the operator's
    assert duration(found["server"]["events"]["retention_period"]) == timedelta(hours=1)

    with get_client(sync_client=True) as client:
        recent = record_run(client, client.create_flow_run(document).id, timedelta(minutes=10))
        # seen at once, before a vacuum pass (every 5 s) can take it: a loaded machine records
        # a run in seconds
        old = record_run(client, client.create_flow_run(document).id, timedelta(hours=2))
        assert traces(client, old) == KEPT
        eventually(lambda: traces(client, old) == GONE, 60, "the vacuum to delete the old run")
        assert traces(client, recent) == KEPT

    # the runs' events as if 2 hours had passed: past EVENT_RETENTION_HOURS=1, not Prefect's 7 days
    an_hour_ago, two_hours_ago = (
        (datetime.now(UTC) - timedelta(hours=h)).strftime(SQLITE_TIME) for h in (1, 2)
    )

    def events_older_than(time: str) -> int:
        with sqlite3.connect(tmp_path / "prefect.db", timeout=30) as db:
            query = "SELECT count(*) FROM events WHERE occurred < ?"
            return db.execute(query, (time,)).fetchone()[0]

    now = datetime.now(UTC).strftime(SQLITE_TIME)
    eventually(lambda: events_older_than(now) > 0, 60, "the server to store the runs' events")
    with sqlite3.connect(tmp_path / "prefect.db", timeout=30) as db:
        db.execute("UPDATE events SET occurred = ?", (two_hours_ago,))
    eventually(lambda: events_older_than(an_hour_ago) == 0, 60, "the vacuum to delete old events")
