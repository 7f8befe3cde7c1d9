"""The queue's SQL at production size: every call the product makes on extraction_queue, timed on a
database of N finished rows and, in the same run, on one of 10,000 (the baseline), both with the
same live backlog; then `registre status` end to end through the Supabase stand-in on each.

Each call is EXPLAIN (ANALYZE)d (planning + execution on the server, the median of --runs after
one warm-up, the two databases interleaved); calls that write run in a transaction rolled back,
so every run sees the same rows. Targets (PASS/FAIL, exit 1 on a FAIL): each call a dispatch
pass makes <= 20 ms at N rows and within 2x of its time at 10,000; `registre status` <= 1 s.

    .venv/bin/python bench/queue_scale.py [--rows 1000000] [--backlog 2000] [--runs 7] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from deployments.status import SECTIONS, Sources, snapshot
from deployments.status_view import render
from deployments.up import prefect_server
from sandbox.postgres import create_database, drop_database
from sandbox.queue_rows import fill_queue
from sandbox.supabase import serve
from tasks.settings import load_settings

BASELINE_ROWS = 10_000
PASS_MS = 20.0  # a dispatch pass's call, at N rows
PASS_RATIO = 2.0  # ... against the same call at BASELINE_ROWS
STATUS_S = 1.0  # the whole `registre status`


@dataclass(frozen=True)
class Call:
    name: str
    sql: str  # {waiting}, {held}, {error} and {today}: ids and the day, filled per database
    per_pass: bool = False  # made on every dispatch pass: the targets apply
    writes: bool = False  # rolled back after each run


# Seed status ids (sandbox/queue_rows.py): 1 waiting, 2 processing, 3 ready for OCR, 5 error.
CALLS = [
    Call("registre_queue_counts_v2(claimable)", "registre_queue_counts_v2(true)", per_pass=True),
    Call("registre_claimable_v2 registre", "registre_claimable_v2(1, NULL, 100)", per_pass=True),
    Call("registre_claimable_v2 ocr-index", "registre_claimable_v2(3, '{{index}}', 100)", True),
    Call("registre_claimable_v2 ocr-acte", "registre_claimable_v2(3, '{{acte}}', 100)", True),
    Call("registre_held_v2", "registre_held_v2()", per_pass=True),
    Call("registre_recover_expired_v2", "registre_recover_expired_v2(2, 2, 1, 3, 5)", True, True),
    Call(
        "registre_cancel_v1 (a seen run)",
        "registre_cancel_v1('{waiting}', 'x', 'registre', 'cancelled', 2, 1, 5)",
        True,
        True,
    ),
    # a document run's calls, once or a few times per document
    Call(
        "registre_claim_v1 (its row)",
        "registre_claim_v1('registre', 'o', 1, 300, 1, 2, NULL, '{waiting}')",
        writes=True,
    ),
    Call(
        "why_not_claimable (row by id)",
        "(SELECT status_id, lease_owner, retry_after FROM extraction_queue"
        " WHERE id = '{waiting}') r",
    ),
    Call(
        "registre_renew_lease_v1", "registre_renew_lease_v1('{held}', '{owner}', 300)", writes=True
    ),
    Call(
        "complete (update by id, owner)",
        "(UPDATE extraction_queue SET status_id = 3, lease_expires_at = NULL WHERE id = '{held}'"
        " AND lease_owner = '{owner}' AND status_id IN (2, 3) RETURNING id) r",
        writes=True,
    ),
    Call(
        "registre_fail_v1",
        "registre_fail_v1('{held}', '{owner}', 'registre', 'm', false, 2, 1, 5, 60)",
        writes=True,
    ),
    Call(
        "registre_release_v1",
        "registre_release_v1('{held}', '{owner}', 'registre', 'm', 2, 1)",
        writes=True,
    ),
    Call("registre_requeue_v1", "registre_requeue_v1('{error}', 'registre', 5, 1)", writes=True),
    Call(
        "registre_fresh_download_v1",
        "registre_fresh_download_v1('{waiting}', 'acte', '12', 'Montréal', 'Montréal', NULL,"
        " NULL, 'Vente', 168, 5)",
    ),
    # `registre status` and `registre retry`
    Call("registre_finished_counts_v1(today)", "registre_finished_counts_v1('{today}')"),
    Call("registre_queue_estimate_v1", "registre_queue_estimate_v1()"),
    Call("registre_costs_v1(today)", "registre_costs_v1('{today}'::date)"),
    Call(
        "last errors (status section)",
        "(SELECT id, error_message FROM extraction_queue WHERE status_id = 5"
        " ORDER BY updated_at DESC LIMIT 5) r",
    ),
    Call(
        "registre_retry_v1 (one id)",
        "registre_retry_v1(5, 1, 3, ARRAY['{error}'::uuid], NULL, NULL, NULL, NULL, true)",
    ),
    # what the previous release's workers call, for comparison (no target)
    Call("v1: registre_queue_counts_v1(claimable)", "registre_queue_counts_v1(true)"),
    Call("v1: registre_claimable_v1 registre", "registre_claimable_v1(1, NULL, 100)"),
    Call("v1: registre_held_v1", "registre_held_v1()"),
    Call(
        "v1: registre_recover_expired_v1", "registre_recover_expired_v1(2, 2, 1, 3, 5)", writes=True
    ),
]


class Database:
    """One throwaway database, filled, with the ids the calls name."""

    def __init__(self, rows: int, backlog: int) -> None:
        self.rows = rows
        self.dsn = create_database("rf_bench_scale")
        began = time.perf_counter()
        fill_queue(self.dsn, rows, backlog)
        self.fill_s = time.perf_counter() - began
        self.conn = psycopg.connect(self.dsn)
        one = "SELECT id::text, lease_owner FROM extraction_queue WHERE status_id = %s {} LIMIT 1"
        held = one.format("AND lease_expires_at > now()")
        today = datetime.now(UTC).date().isoformat()
        self.ids = {
            "waiting": self._first(one.format("AND retry_after IS NULL"), 1)[0],
            "held": self._first(held, 2)[0],
            "owner": self._first(held, 2)[1],
            "error": self._first(one.format(""), 5)[0],
            "today": today,
        }
        self.conn.rollback()

    def _first(self, query: str, status: int) -> tuple[str, str]:
        return self.conn.execute(query, (status,)).fetchone()

    def time_ms(self, call: Call) -> float:
        """Planning + execution of one call, as the server measured it."""
        sql = call.sql.format(**self.ids)
        source = sql if sql.startswith("(") else f"{sql} AS r"
        query = f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM {source}"
        if sql.startswith("(UPDATE"):  # a data-modifying statement goes in a WITH
            query = f"EXPLAIN (ANALYZE, FORMAT JSON) WITH r AS {sql[:-2]} SELECT * FROM r"
        [[plan]] = self.conn.execute(query).fetchone()
        self.conn.rollback()  # every call alike; the writes are undone
        return plan["Planning Time"] + plan["Execution Time"]

    def close(self, keep: bool) -> None:
        self.conn.close()
        if keep:
            print(f"kept: {self.dsn}")
        else:
            drop_database(self.dsn)


@contextmanager
def status_settings(db: Database, storage: Path) -> Iterator[object]:
    """Settings for `registre status` over `db` through its own Supabase stand-in."""
    key = f"bench-{uuid.uuid4().hex}"
    prefix = f"rfbench:{uuid.uuid4().hex[:8]}:"
    with serve(db.dsn, key, storage) as url:
        yield load_settings(
            _env_file=None, prod_supabase_url=url, prod_supabase_service_key=key,
            redis_key_prefix=prefix,
        )  # fmt: skip
    client = redis.Redis.from_url(load_settings(_env_file=None).redis_url)
    for found in client.scan_iter(match=prefix + "*"):
        client.delete(found)
    client.close()


def time_status(settings: object, runs: int) -> tuple[float, dict[str, float], bool]:
    """`registre status` in this process (interpreter start and imports aside): open its
    clients, gather every section, draw the screen and the --json document. The median seconds
    over `runs`, each section's median, and whether the queue section answered every time."""
    totals: list[float] = []
    sections: dict[str, list[float]] = {}
    answered = True
    for _ in range(runs + 1):  # the first one warms the stand-in up, and is not counted
        began = time.perf_counter()
        with Sources.open(settings) as src:  # type: ignore[arg-type]
            found = snapshot(src)
        Console(file=io.StringIO(), width=160).print(render(found))
        json.dumps(found, ensure_ascii=False)
        totals.append(time.perf_counter() - began)
        answered = answered and "down" not in found["queue"]["environments"]["prod"]
        with Sources.open(settings) as src:  # type: ignore[arg-type]
            for name in SECTIONS:
                tick = time.perf_counter()
                snapshot(src, [name])
                sections.setdefault(name, []).append(time.perf_counter() - tick)
    return (statistics.median(totals[1:]),
            {n: statistics.median(t[1:]) for n, t in sections.items()}, answered)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished rows")
    parser.add_argument("--backlog", type=int, default=2000, help="live rows, in both databases")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per call (median)")
    parser.add_argument("--keep", action="store_true", help="do not drop the databases")
    args = parser.parse_args()
    failed = False
    with ExitStack() as stack:
        # first, while the machine is quiet: a Prefect server of its own for `registre status`
        # (no pools deployed: its limits section says so at once)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.environ["PREFECT_HOME"] = str(tmp / "prefect")
        api = stack.enter_context(prefect_server(tmp, port=free_port()))
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        dbs = []
        for rows in (BASELINE_ROWS, args.rows):
            db = Database(rows, args.backlog)
            stack.callback(db.close, args.keep)
            dbs.append(db)
            print(f"{rows:,} finished + {args.backlog:,} live rows: filled in {db.fill_s:.0f} s")
        small, big = dbs

        print(f"\nSQL calls, ms (planning + execution, median of {args.runs}); targets for the"
              f" calls of every dispatch pass: <= {PASS_MS:g} ms at {args.rows:,} rows and"
              f" <= {PASS_RATIO:g}x the time at {BASELINE_ROWS:,}")  # fmt: skip
        print(f"{'call':<42} {'pass':>4} {f'{BASELINE_ROWS:,}':>10} {f'{args.rows:,}':>10}"
              f" {'ratio':>7}  verdict")  # fmt: skip
        for call in CALLS:
            times: dict[int, list[float]] = {small.rows: [], big.rows: []}
            for run in range(args.runs + 1):
                for db in dbs:  # interleaved: the machine's drift hits both alike
                    ms = db.time_ms(call)
                    if run:
                        times[db.rows].append(ms)
            at_small, at_big = (statistics.median(times[db.rows]) for db in dbs)
            ratio = at_big / at_small
            verdict = ""
            if call.per_pass:
                ok = at_big <= PASS_MS and ratio <= PASS_RATIO
                failed |= not ok
                verdict = "PASS" if ok else "FAIL"
            print(f"{call.name:<42} {'yes' if call.per_pass else '':>4} {at_small:>10.2f}"
                  f" {at_big:>10.2f} {ratio:>7.2f}  {verdict}")  # fmt: skip

        found = {}
        for db in dbs:
            with status_settings(db, tmp / str(db.rows)) as settings:
                found[db.rows] = time_status(settings, args.runs)
        (small_s, small_parts, _), (big_s, big_parts, answered) = found.values()
        ok = big_s <= STATUS_S and answered
        failed |= not ok
        print(f"\n`registre status` through the Supabase stand-in, s (median of {args.runs};"
              f" target <= {STATUS_S:g} s; a local Prefect server, no pools)")  # fmt: skip
        print(f"{'':<42} {'':>4} {f'{BASELINE_ROWS:,}':>10} {f'{args.rows:,}':>10} {'ratio':>7}")
        for name in big_parts:
            print(
                f"{'  section ' + name:<42} {'':>4} {small_parts[name]:>10.3f}"
                f" {big_parts[name]:>10.3f} {big_parts[name] / small_parts[name]:>7.2f}"
            )
        print(
            f"{'whole screen and --json (clients opened)':<42} {'':>4} {small_s:>10.3f}"
            f" {big_s:>10.3f} {big_s / small_s:>7.2f}  {'PASS' if ok else 'FAIL'}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
