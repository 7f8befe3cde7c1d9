"""What `registre up` does to the PostgreSQL database of a Prefect server it starts
(deployments/server_database.py), against the machine's PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from deployments.server_database import configured_url, prepare
from sandbox.postgres import ADMIN_DSN, drop_database, prefect_database_url
from tasks.failures import ConfigError


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


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
