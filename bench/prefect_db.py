"""What the rebalance schedule alone leaves in the Prefect database: the deployed system on the
stand-ins (a server of its own on SQLite, one `registre worker` host, no documents), left to
run for some minutes (two rebalance ticks a minute); then the file size and the rows per table.

    .venv/bin/python bench/prefect_db.py --minutes 6

Retentions come from the environment as for `registre up` (REBALANCE_RUN_RETENTION_HOURS,
EVENT_RETENTION_HOURS...), so a run with short ones shows the clean-up at work.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import TERMINAL_STATES
from stack import Stack  # bench/stack.py, beside this file

TABLES = ("flow_run", "task_run", "log", "artifact", "events", "event_resources")
HOST_ENV = {"SERVER_MAX_CPU": "8", "SERVER_MAX_RAM": "16", "OCR_WORKER_POOL_SIZE": "2"}


def rebalance_runs_ended() -> int:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("rebalance/rebalance")
        return client.count_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(TERMINAL_STATES)))
            ),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        )


def database_figures(home: Path) -> dict[str, int]:
    db = home / "prefect.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return {"file_bytes": db.stat().st_size, "used_bytes": (pages - free) * page_size, **rows}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=6)
    parser.add_argument("--run-dir", type=Path, help="keep the server, host logs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefect-db-") as tmp:
        run_dir = args.run_dir or Path(tmp)
        run_dir.mkdir(parents=True, exist_ok=True)
        with Stack(run_dir) as stack:
            stack.deploy()
            stack.start_host("db-a", **HOST_ENV)
            time.sleep(60 * args.minutes)
            figures = {"minutes": args.minutes, "rebalance_runs_ended": rebalance_runs_ended()}
            figures |= database_figures(run_dir / "prefect")
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
