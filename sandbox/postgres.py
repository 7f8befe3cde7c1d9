from __future__ import annotations

import os
import uuid

import psycopg

from deployments.migrations import apply_migrations

# The machine's PostgreSQL (trust auth); a throwaway database per test, stand-in or benchmark.
ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database(prefix: str = "rf_test") -> str:
    """A new database with the migrations applied; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    apply_migrations(dsn)
    return dsn


def prefect_database_url(prefix: str = "rf_prefect") -> str:
    """A Prefect server database's URL, for a throwaway database not yet made: `registre up`
    makes it (deployments/server_database.py). drop_database takes the URL too."""
    dsn = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{dsn}/{prefix}_{uuid.uuid4().hex[:10]}"


def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def insert_registry_accounts(conn: psycopg.Connection) -> None:
    """The registry stand-in's accounts, as `worker_accounts` rows (passwords included: they
    are the stand-in's own, not secrets)."""
    from sandbox.registry.catalogue import ACCOUNTS

    for account in ACCOUNTS:
        conn.execute(
            "INSERT INTO worker_accounts (username, password, is_active) VALUES (%s, %s, %s)",
            (account.username, account.password, account.active),
        )
