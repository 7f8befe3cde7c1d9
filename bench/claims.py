"""Claims per second through supabase-py and the Supabase stand-in, against the same SQL function
called directly with psycopg, with 1, 4 and 16 concurrent claimers, in one run.

    .venv/bin/python bench/claims.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from sandbox.postgres import create_database, drop_database
from sandbox.supabase import serve
from tasks.queue.jobs import Stage
from tasks.queue.table import Queue
from tasks.settings import load_settings

DIRECT_CLAIM = "SELECT id FROM registre_claim_v1('registre', %s, 1, 300, 1, 2, NULL::text[])"


def reset(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE extraction_queue")
        conn.execute(
            "INSERT INTO extraction_queue (document_source, document_number, cadastre, status_id,"
            " created_at) SELECT 'index', g::text, 'Cadastre du Québec', 1,"
            " now() + make_interval(secs => g) FROM generate_series(1, %s) g",
            (rows,),
        )


def run(claimers: int, make_claim: Callable[[], Callable[[], int]]) -> tuple[float, int]:
    """Claim one row at a time from `claimers` threads until the queue is empty."""
    claimed = [0] * claimers
    claim_fns = [make_claim() for _ in range(claimers)]
    start = threading.Barrier(claimers + 1)

    def worker(n: int) -> None:
        start.wait()
        while claim_fns[n]():
            claimed[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(claimers)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - began, sum(claimed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    dsn = create_database("rf_bench")
    key = f"bench-{uuid.uuid4().hex}"
    try:
        with tempfile.TemporaryDirectory() as storage, serve(dsn, key, Path(storage)) as url:
            settings = load_settings(
                _env_file=None, prod_supabase_url=url, prod_supabase_service_key=key
            )

            def via_supabase() -> Callable[[], int]:
                queue = Queue(settings)
                return lambda: len(queue.claim(Stage.REGISTRE, 1, uuid.uuid4().hex))

            def via_psycopg() -> Callable[[], int]:
                conn = psycopg.connect(dsn, autocommit=True)
                return lambda: len(conn.execute(DIRECT_CLAIM, (uuid.uuid4().hex,)).fetchall())

            print(f"{args.rows} rows claimed one at a time; rates in claims/s")
            print(f"{'claimers':>8} {'psycopg':>10} {'supabase-py':>12} {'ratio':>7}")
            for claimers in (1, 4, 16):
                rates = []
                for make in (via_psycopg, via_supabase):
                    reset(dsn, args.rows)
                    seconds, claimed = run(claimers, make)
                    assert claimed == args.rows, f"claimed {claimed} of {args.rows}"
                    rates.append(claimed / seconds)
                direct, api = rates
                print(f"{claimers:>8} {direct:>10.0f} {api:>12.0f} {api / direct:>7.2f}")
    finally:
        drop_database(dsn)


if __name__ == "__main__":
    main()
