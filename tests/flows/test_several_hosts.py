"""The set-up of docs/operations.md's "Several hosts": one Prefect server on PostgreSQL, one
Redis, hosts running `registre worker`. This module's tests share a Prefect server of their own,
on a throwaway PostgreSQL database that `registre up`'s server start makes
(deployments/server_database.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from prefect.client.schemas.objects import StateType

from deployments.server_database import configured_url, prepare
from sandbox.postgres import ADMIN_DSN, drop_database, prefect_database_url
from sandbox.registry import control
from tasks.failures import ConfigError
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


def test_a_missing_database_is_made_with_pg_trgm_and_a_second_start_changes_nothing():
    url = prefect_database_url()
    try:
        prepare(configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": url}))
        prepare(configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": url}))
        with psycopg.connect(libpq(url)) as conn:
            extensions = {e for (e,) in conn.execute("SELECT extname FROM pg_extension")}
        assert "pg_trgm" in extensions
    finally:
        drop_database(url)


def test_a_role_that_may_not_create_pg_trgm_is_told_who_must(monkeypatch):
    url = prefect_database_url()
    role = url.rsplit("/", 1)[1] + "_role"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'role-s3cret'")
    try:
        prepare(configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": url}))  # as postgres
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("DROP EXTENSION pg_trgm")
        as_role = url.replace("//postgres@", f"//{role}:role-s3cret@", 1)
        with pytest.raises(ConfigError, match=r"have the database's owner run") as refused:
            prepare(configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": as_role}))
        assert "role-s3cret" not in str(refused.value)
    finally:
        drop_database(url)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_server_that_cannot_be_reached_is_a_clear_error_without_the_password():
    url = "postgresql+asyncpg://prefect:s3cret@127.0.0.1:1/prefect"
    with pytest.raises(ConfigError, match="cannot be reached or created") as refused:
        prepare(configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": url}))
    assert "s3cret" not in str(refused.value)


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
