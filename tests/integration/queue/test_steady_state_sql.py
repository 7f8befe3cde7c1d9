"""The SQL every dispatch pass runs reads the live rows only, through the partial indexes of
20261206000000_registre_flows_steady_state.sql, on a table of 50,000 finished rows; and answers
what the v1 functions answer. The plans are the ones the functions really run (auto_explain of
their nested statements, past plpgsql's first five custom plans), not EXPLAINs of copies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from deployments.migrations import MIGRATIONS_DIR
from sandbox.postgres import create_database, drop_database
from sandbox.queue_rows import fill_queue
from tasks.queue.statuses import LIVE, MAPPINGS

LIVE_INDEXES = {"idx_extraction_queue_live", "idx_extraction_queue_live_lease"}
MIGRATION = MIGRATIONS_DIR / "20261206000000_registre_flows_steady_state.sql"

# Every call of a dispatch pass or a reconcile (seed ids: 1 waiting, 2 in progress, 3 ready for
# OCR, 5 error), each with the v1 call it replaces.
PER_PASS = {
    "counts": ("registre_queue_counts_v2(false)", "registre_queue_counts_v1(false)"),
    "counts claimable": ("registre_queue_counts_v2(true)", "registre_queue_counts_v1(true)"),
    "claimable registre": (
        "registre_claimable_v2(1, NULL, 100)",
        "registre_claimable_v1(1, NULL, 100)",
    ),
    "claimable ocr-index": (
        "registre_claimable_v2(3, '{index}', 50)",
        "registre_claimable_v1(3, '{index}', 50)",
    ),
    "held": ("registre_held_v2()", "registre_held_v1()"),
    "recover expired": (
        "registre_recover_expired_v2(2, 2, 1, 3, 5)",
        "registre_recover_expired_v1(2, 2, 1, 3, 5)",
    ),
}


@pytest.fixture(scope="module")
def big_queue() -> Iterator[str]:
    """50,000 finished rows over a year and 500 live ones, vacuumed and analysed."""
    dsn = create_database()
    try:
        fill_queue(dsn, 50_000, 500)
        yield dsn
    finally:
        drop_database(dsn)


def rows_of(conn: psycopg.Connection, call: str, columns: str = "*") -> list[tuple[Any, ...]]:
    """The call's rows, sorted; a write is rolled back so that every call sees the same table."""
    found = sorted(conn.execute(f"SELECT {columns} FROM {call}").fetchall(), key=repr)
    conn.rollback()
    return found


def nested_plans(conn: psycopg.Connection, call: str, times: int = 7) -> list[dict[str, Any]]:
    """The plans of the statements inside the function, as executed, over `times` calls."""
    plans: list[dict[str, Any]] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        message = diag.message_primary or ""
        if "plan:" in message:
            plans.append(json.loads(message.split("plan:", 1)[1])["Plan"])

    conn.add_notice_handler(keep)
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_format = json",
        "auto_explain.log_nested_statements = on",
        "client_min_messages = log",
    ):
        conn.execute(f"SET {setting}")  # fmt: skip
    for _ in range(times):
        rows_of(conn, call)
    conn.execute("RESET client_min_messages")
    conn.rollback()
    return [p for p in plans if p.get("Node Type") != "Function Scan"]  # the outer SELECT


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of the plan that reads extraction_queue or one of its indexes."""
    reads = plan.get("Relation Name") == "extraction_queue" or "Index Name" in plan
    if reads and "Scan" in plan["Node Type"]:
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


@pytest.fixture(scope="module")
def conn(big_queue: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(big_queue) as connection:
        connection.execute("LOAD 'auto_explain'")
        connection.commit()
        yield connection


def test_the_live_indexes_hold_the_live_statuses_of_both_mappings_only(conn):
    for statuses in MAPPINGS.values():
        finished = {statuses.done, statuses.error}
        assert finished == {4, 5}
        assert set(statuses) - finished <= set(LIVE) and not finished & set(LIVE)
    assert LIVE == (1, 2, 3, 6)
    predicates = dict(conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index"
        " WHERE indrelid = 'extraction_queue'::regclass AND indpred IS NOT NULL"
    ).fetchall())  # fmt: skip
    for name in LIVE_INDEXES:  # '{1,2,3,6}'::integer[] or ARRAY[1, 2, 3, 6], as it was built
        bare = re.sub(r"ARRAY|::integer\[\]|[\s'{}\[\]]", "", predicates[name])
        assert "status_id=ANY(1,2,3,6)" in bare, (name, predicates[name])
    text = MIGRATION.read_text()
    assert text.count(f"status_id IN {LIVE}") >= 6  # two indexes, four functions


@pytest.mark.parametrize("name", PER_PASS)
def test_each_call_of_a_pass_reads_only_the_live_rows_through_their_indexes(conn, name):
    plans = nested_plans(conn, PER_PASS[name][0])
    assert plans, "auto_explain saw no statement inside the function"
    for plan in plans:
        for node in scans(plan):
            where = f"{name}: {node['Node Type']} {node.get('Index Name', '')}"
            assert node["Node Type"] != "Seq Scan", where
            index = node.get("Index Name")
            if index == "extraction_queue_pkey":  # a row already found, by its id
                assert node.get("Index Cond", "").startswith("(id = "), where
            elif node["Node Type"] != "Bitmap Heap Scan":  # its Bitmap Index Scan is checked
                assert index in LIVE_INDEXES, where


@pytest.mark.parametrize("name", PER_PASS)
def test_each_v2_call_answers_what_v1_answers_on_the_live_rows(conn, name):
    v2, v1 = PER_PASS[name]
    # a row taken back carries the time it was taken back (now()): compare what it became
    columns = "id, status_id, attemtps, ocr_attempts, lease_owner" if "recover" in name else "*"
    new, old = rows_of(conn, v2, columns), rows_of(conn, v1, columns)
    if name.startswith("counts"):
        old = [row for row in old if row[0] in (1, 2, 3, 6)]
    assert new == old and new, name


def test_finished_rows_are_counted_for_their_period_and_the_total_estimated(conn):
    since = datetime.now(UTC) - timedelta(days=30)
    counted = conn.execute(
        "SELECT status_id, document_source, count(*) FROM extraction_queue"
        " WHERE status_id IN (4, 5) AND updated_at >= %s GROUP BY 1, 2",
        (since,),
    ).fetchall()
    found = conn.execute("SELECT * FROM registre_finished_counts_v1(%s)", (since,)).fetchall()
    assert sorted(found) == sorted(counted) and 0 < sum(c for *_, c in found) < 50_000 / 6
    [[estimate]] = conn.execute("SELECT registre_queue_estimate_v1()").fetchall()
    assert estimate == 50_500  # just analysed: exact
    conn.rollback()
