"""The set-up of docs/operations.md's "Several hosts": one Prefect server on PostgreSQL, one
Redis, hosts running `registre worker`. The Prefect server is this module's own, on a throwaway
PostgreSQL database that `registre up`'s server start makes (deployments/server_database.py;
tests/integration/test_server_database_pg.py checks that start against PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from prefect.client.schemas.objects import StateType

from sandbox.postgres import drop_database, prefect_database_url
from sandbox.registry import control
from tasks.queue.statuses import SEED

from .conftest import throwaway_prefect_server
from .control_plane import ONE_SLOT, index_columns, limits_in_prefect, run_of, state_of


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Overrides the session's SQLite server for this module."""
    url = prefect_database_url()
    try:
        home = tmp_path_factory.mktemp("prefect-server-postgres")
        with throwaway_prefect_server(home, PREFECT_API_DATABASE_CONNECTION_URL=url):
            yield url
    finally:
        drop_database(url)


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def tables(url: str) -> set[str]:
    with psycopg.connect(libpq(url)) as conn:
        found = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in found}


@pytest.mark.slow
def test_two_hosts_add_up_and_a_stopped_hosts_document_is_finished_by_the_other(
    system, prefect_api
):
    assert {"flow_run", "work_pool", "events"} <= tables(prefect_api)  # the server is on it
    pipeline = system.pipeline
    control.set_faults(pipeline.registry, latency_s=1.5)
    job_id = pipeline.insert("index", **index_columns())
    # h1: 16 vCPU, 1 registre + 2 OCR; h2: 24 vCPU, 2 registre + 3 OCR
    system.start_host("h1", **ONE_SLOT, WORKER_DRAIN_SECONDS="0")
    run = system.wait(lambda: (r := run_of(system, job_id)) and r.state.is_running() and r,
                      120, "the registre run to start on h1")  # fmt: skip
    system.start_host("h2", SERVER_MAX_CPU="24", SERVER_MAX_RAM="32", WORKER_COUNT="2",
                      OCR_WORKER_POOL_SIZE="3")  # fmt: skip
    both = {"registre": 3, "ocr": 5}
    system.wait(lambda: {k: v for k, v in limits_in_prefect(system).items() if k in both} == both,
                30, "the pool limits to be the sums")  # fmt: skip

    assert system.stop_host("h1") == 0  # no time to drain: its run is stopped and given back
    after_stop = pipeline.row(job_id)
    assert after_stop["attemtps"] == 0, after_stop["error_message"]

    assert state_of(system, run.id).type is StateType.CRASHED
    alone = {"registre": 2, "ocr": 3}
    system.wait(lambda: {k: v for k, v in limits_in_prefect(system).items() if k in alone} == alone,
                30, "the limits to shrink to h2's")  # fmt: skip
    control.set_faults(pipeline.registry, latency_s=0)
    system.wait(lambda: pipeline.row(job_id)["status_id"] == SEED.done, 240, "h2 to finish it")
    row = pipeline.row(job_id)
    assert row["attemtps"] == 0, row["error_message"]  # a host's stop is not the document's fault
    assert len([r for r in system.runs("registre") if r.parameters["job_id"] == job_id]) == 2
