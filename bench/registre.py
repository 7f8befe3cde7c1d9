"""Registry downloads per minute and peak memory, 1 and 3 concurrent runs, against the registry
stand-in with a fixed latency on every page.

Each run is its own process with its own Chromium (as a flow run is), downloading documents in a
loop through the real driver. Throughput is printed as a ratio of the ideal for that latency
(runs x 60 s / (latency x the site's responses per document: pages, frames, the PDF)); memory
is the proportional set size (PSS) of every process of the runs, browsers included, against the
1 GB per run of the cost table.

    .venv/bin/python bench/registre.py [--latency 0.5] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from sandbox.postgres import create_database, drop_database, insert_registry_accounts
from sandbox.registry import control
from sandbox.registry import serve as serve_registry
from sandbox.registry.catalogue import INDEX_DOCUMENTS
from sandbox.supabase import serve as serve_supabase

BUDGET_GB_PER_RUN = 1.0  # the cost table's registre RAM


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


async def worker(args: argparse.Namespace) -> None:
    """One run: download catalogue documents in a loop until the time is up."""
    from redis.asyncio import Redis
    from supabase import create_client

    from tasks.registry.accounts import AccountPool
    from tasks.registry.browser import BrowserHost
    from tasks.registry.config import RegistryConfig
    from tasks.registry.driver import download_document
    from tasks.registry.session import SessionStore
    from tasks.request import Request

    config = RegistryConfig(base_url=args.registry)
    client = create_client(args.supabase, os.environ["BENCH_SERVICE_KEY"])
    sessions = SessionStore(Redis.from_url(args.redis), prefix=args.prefix)

    def rpc(function: str, params: dict[str, Any], repeatable: bool = True) -> Any:
        # made once, whatever `repeatable` says: no retry policy here
        return client.rpc(function, params).execute().data

    accounts = AccountPool(rpc, owner=f"bench-{uuid.uuid4().hex[:8]}")
    done, n = 0, args.offset
    deadline = time.monotonic() + args.seconds
    # one browser for the loop, a fresh context per document, as a registre run has
    async with BrowserHost(headless=config.headless) as browser:
        with tempfile.TemporaryDirectory() as evidence:
            while time.monotonic() < deadline:
                doc = INDEX_DOCUMENTS[n % len(INDEX_DOCUMENTS)]
                n += 1
                request = Request(
                    document_source="index",
                    document_number=doc.lot,
                    circonscription=doc.circonscription,
                    cadastre=doc.cadastre,
                    designation_secondaire=doc.designation,
                )
                await download_document(
                    request,
                    accounts=accounts,
                    sessions=sessions,
                    cfg=config,
                    evidence_dir=Path(evidence),
                    browser=browser,
                )
                done += 1
    print(json.dumps({"documents": done}))


def measure(runs: int, args: argparse.Namespace, env: dict[str, str]) -> tuple[float, float, int]:
    """(documents per minute, peak PSS in GB, documents) for `runs` concurrent processes."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--registry",
        args.registry,
        "--supabase",
        args.supabase,
        "--redis",
        args.redis,
        "--prefix",
        args.prefix,
        "--seconds",
        str(args.seconds),
    ]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [*command, "--offset", str(i * 3)], env=env, stdout=subprocess.PIPE, text=True
        )
        for i in range(runs)
    ]
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.25):
            pids = [p for proc in procs for p in descendants(proc.pid)]
            peak = max(peak, sum(pss_kb(p) for p in pids))

    sampler = threading.Thread(target=sample)
    sampler.start()
    outputs = [proc.communicate()[0] for proc in procs]
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - started
    documents = sum(json.loads(out.strip().splitlines()[-1])["documents"] for out in outputs)
    return documents * 60 / elapsed, peak / 1024 / 1024, documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds added to every page")
    parser.add_argument("--seconds", type=float, default=60, help="length of each measurement")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--registry", "--supabase", "--redis", "--prefix"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
        return

    key = f"bench-{uuid.uuid4().hex}"
    args.redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    args.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    dsn = create_database("rf_bench")
    try:
        with (
            tempfile.TemporaryDirectory() as storage,
            serve_supabase(dsn, key, Path(storage)) as supabase_url,
            serve_registry() as registry_url,
        ):
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                insert_registry_accounts(conn)
            args.registry, args.supabase = registry_url, supabase_url
            env = {**os.environ, "BENCH_SERVICE_KEY": key}

            # delayed responses (pages, frames, the PDF) per document, without latency, once
            # logged in (the session is kept)
            one_document = argparse.Namespace(**{**vars(args), "seconds": 0.1})
            measure(1, one_document, env)
            control.reset_counters(registry_url)
            _, _, docs = measure(1, one_document, env)
            counters = control.counters(registry_url)
            responses_per_doc = counters["responses"] / max(1, docs)

            control.set_faults(registry_url, latency_s=args.latency)
            ideal_doc_s = responses_per_doc * args.latency
            print(
                f"latency {args.latency:g} s x {responses_per_doc:.1f} responses per document"
                f" -> ideal {ideal_doc_s:.1f} s per document per run; {args.seconds:g} s each"
            )
            print(
                f"{'runs':>4} {'docs':>5} {'docs/min':>9} {'ideal':>7} {'ratio':>6}"
                f" {'peak PSS GB':>12} {'vs budget':>10}"
            )
            for runs in (1, 3):
                rate, peak_gb, documents = measure(runs, args, env)
                ideal = runs * 60 / ideal_doc_s
                budget = runs * BUDGET_GB_PER_RUN
                print(
                    f"{runs:>4} {documents:>5} {rate:>9.1f} {ideal:>7.1f} {rate / ideal:>6.2f}"
                    f" {peak_gb:>12.2f} {peak_gb / budget:>9.0%}"
                )
    finally:
        drop_database(dsn)
        client = redis.Redis.from_url(args.redis)
        for k in client.scan_iter(match=args.prefix + "*"):
            client.delete(k)


if __name__ == "__main__":
    main()
