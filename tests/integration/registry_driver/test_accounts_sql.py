from __future__ import annotations

import psycopg
import pytest

from deployments.migrations import apply_migrations

CHECKOUT = "SELECT username FROM registre_checkout_account_v1(%s, %s)"


@pytest.fixture
def db(pg_dsn: str):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO worker_accounts (username, password, is_active, last_used, failure_count)
               VALUES ('recent', 'p', true, now() - interval '1 minute', 0),
                      ('old', 'p', true, now() - interval '1 day', 0),
                      ('never', 'p', true, NULL, 2),
                      ('inactive', 'p', false, NULL, 0),
                      ('failing', 'p', true, NULL, 3)"""
        )
        yield conn


def checkout(conn: psycopg.Connection, owner: str, lease_s: int = 600) -> str | None:
    row = conn.execute(CHECKOUT, (owner, lease_s)).fetchone()
    return row[0] if row else None


def test_checkout_takes_least_recently_used_usable_accounts_in_turn(db) -> None:
    """Never-used first, then oldest; inactive and over-the-limit accounts are never given."""
    assert [checkout(db, f"run-{i}") for i in range(4)] == ["never", "old", "recent", None]


def test_released_account_can_be_taken_again(db) -> None:
    first = checkout(db, "run-a")
    (account_id,) = db.execute(
        "SELECT id FROM worker_accounts WHERE username = %s", (first,)
    ).fetchone()
    assert db.execute(
        "SELECT registre_release_account_v1(%s, 'someone-else')", (account_id,)
    ).fetchone() == (False,)
    assert db.execute(
        "SELECT registre_release_account_v1(%s, 'run-a')", (account_id,)
    ).fetchone() == (True,)
    db.execute("UPDATE worker_accounts SET last_used = NULL WHERE id = %s", (account_id,))
    assert checkout(db, "run-b") == first


def test_expired_checkout_lease_frees_the_account(db) -> None:
    assert checkout(db, "run-a", lease_s=0) == "never"
    db.execute("UPDATE worker_accounts SET last_used = NULL WHERE username = 'never'")
    assert checkout(db, "run-b") == "never"


def test_concurrent_checkouts_skip_a_locked_row(pg_dsn: str, db) -> None:
    """A checkout whose transaction is still open does not make the next one wait or collide."""
    with psycopg.connect(pg_dsn) as held:  # not autocommit: the row stays locked
        assert checkout(held, "run-a") == "never"
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            other.execute("SET lock_timeout = '2s'")
            assert checkout(other, "run-b") == "old"
        held.commit()


def test_record_login_counts_failures_and_resets_on_success(db) -> None:
    (account_id,) = db.execute("SELECT id FROM worker_accounts WHERE username = 'old'").fetchone()
    record = "SELECT registre_record_login_v1(%s, %s)"
    assert db.execute(record, (account_id, False)).fetchone() == (1,)
    assert db.execute(record, (account_id, False)).fetchone() == (2,)
    assert db.execute(record, (account_id, True)).fetchone() == (0,)


def test_migrations_apply_twice(pg_dsn: str) -> None:
    assert "20261128000100_registre_flows_accounts.sql" in apply_migrations(pg_dsn)


def test_accounts_with_a_stored_session_are_preferred(db) -> None:
    (recent,) = db.execute("SELECT id FROM worker_accounts WHERE username = 'recent'").fetchone()
    row = db.execute(
        "SELECT username FROM registre_checkout_account_v1('run-a', 60, 3, NULL, %s)",
        ([recent],),
    ).fetchone()
    assert row == ("recent",)
