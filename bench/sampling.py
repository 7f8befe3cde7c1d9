"""What the soak measures of a running stack, each call one reading: the Prefect database (file
sizes, rows per table, read-only), Redis (memory, keys), Storage (bytes on disk), the long-lived
processes (RSS, open files, threads, from /proc), Chromium, and the queue (done, waiting)."""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from pathlib import Path

import psycopg
import redis
from checks import FINAL  # bench/checks.py and bench/stack.py, beside this file
from stack import Stack, is_prefect_worker

from deployments.engine_server import ENGINE

# The tables retention should bound: runs with their states, tasks, logs, artifacts; events.
PREFECT_TABLES = ("flow_run", "flow_run_state", "task_run", "task_run_state", "log", "artifact",
                  "events", "event_resources")  # fmt: skip
OTHER_TABLES = ("worker",)  # one row per worker name: a restarted worker must not add one
MB = 1024 * 1024
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def prefect_database(home: Path) -> dict[str, float]:
    """The SQLite files' size (with -wal and -shm) and the rows of PREFECT_TABLES."""
    db = home / "prefect.db"
    files = [db, db.with_name("prefect.db-wal"), db.with_name("prefect.db-shm")]
    found = {"prefect db MB": sum(f.stat().st_size for f in files if f.exists()) / MB}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        for table in PREFECT_TABLES + OTHER_TABLES:
            found[f"{table} rows"] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    conn.close()
    return found


def redis_usage(port: int) -> dict[str, float]:
    client = redis.Redis(port=port)
    try:
        return {
            "redis used MB": client.info("memory")["used_memory"] / MB,
            "redis keys": client.dbsize(),
        }
    finally:
        client.close()


def storage_mb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / MB


def queue_counts(dsn: str) -> dict[str, float]:
    """Rows done (a final status: done or error) and not yet (waiting or in progress)."""
    with psycopg.connect(dsn) as conn:
        final, open_ = conn.execute(
            "SELECT count(*) FILTER (WHERE status_id = ANY(%s)),"
            " count(*) FILTER (WHERE status_id <> ALL(%s)) FROM extraction_queue",
            (list(FINAL), list(FINAL)),
        ).fetchone()
    return {"documents final": final, "backlog rows": open_}


def _read(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def role(stack: Stack, pid: int) -> str | None:
    """The long-lived process `pid` is, by name (None for a run's processes and helpers)."""
    if pid == stack.redis.pid:
        return "redis"
    argv = _read(pid, "cmdline").split(b"\0")
    words = [a.decode(errors="replace") for a in argv]
    environ = _read(pid, "environ").split(b"\0")
    if any(item.startswith(b"PREFECT__FLOW_RUN_ID=") for item in environ):
        return None  # a flow run, or Chromium and Playwright's driver under it
    if "server" in words and "start" in words:
        return "prefect server"
    for module in ("sandbox.supabase", "sandbox.registry", "sandbox.gemini"):
        if module in words:
            return module.replace("sandbox.", "stand-in ")
    host = next((i.split(b"=", 1)[1].decode() for i in environ
                 if i.startswith(b"REGISTRE_HOST_ID=")), "?")  # fmt: skip
    if "deployments.engine_server" in words:
        # the engines it forks keep its command line and its environment's first block: one of
        # them is a run's, in a session of its own (the server stays in its worker's)
        return None if os.getsid(pid) == pid else f"engine server {host}"
    if is_prefect_worker(pid) and "--pool" in words:
        return f"prefect worker {host}/{words[words.index('--pool') + 1]}"
    if "worker" in words and "--host-id" in words:
        return f"registre worker {host}"
    return None


def process_usage(stack: Stack) -> dict[str, float]:
    """RSS (MB), open file descriptors and threads of each long-lived process, by role: the
    largest process of the role (a restarted Prefect worker keeps its name; a retiring one beside
    its replacement is not added to it); Chromium and flow-run process counts."""
    found: dict[str, float] = defaultdict(float)
    found["chromium processes"] = found["flow-run processes"] = 0
    for pid in stack.processes():
        try:
            comm = _read(pid, "comm").strip()
            if comm.startswith((b"chrom", b"headless_shell")):
                found["chromium processes"] += 1
                continue
            name = role(stack, pid)
            if name is None:
                found["flow-run processes"] += ENGINE.encode() in _read(pid, "cmdline")
                continue
            rss_pages = int(_read(pid, "statm").split()[1])
            threads = int(next(line for line in _read(pid, "status").splitlines()
                               if line.startswith(b"Threads:")).split()[1])  # fmt: skip
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            continue  # it ended meanwhile
        for quantity, value in (("RSS MB", rss_pages * PAGE_BYTES / MB), ("fds", fds),
                                ("threads", threads)):  # fmt: skip
            key = f"{name} {quantity}"
            found[key] = max(found[key], value)
    return dict(found)


def sample(stack: Stack) -> dict[str, float]:
    """One reading of everything."""
    return {
        **queue_counts(stack.dsn),
        **prefect_database(stack.tmp / "prefect"),
        **redis_usage(stack.redis_port),
        "storage MB": storage_mb(stack.tmp / "storage"),
        **process_usage(stack),
    }
