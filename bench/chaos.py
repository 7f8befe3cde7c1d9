"""Documents through the whole stack (`registre deploy`, two `registre worker` hosts, a Prefect
server, Redis, the three stand-ins) while faults hit every part of it:

- flow-run processes and Prefect worker processes killed with SIGKILL, one whole host lost
  (every process of it killed at once) and started again;
- Redis restarted (it comes back empty), the Supabase stand-in dropping every connection for a
  few seconds;
- Gemini answering 429 storms (with retryDelay) and 5xx bursts;
- the registry slow, its sessions expired, searches answering 500, downloads stalling.

Documents go in waves of distinct catalogue documents, so that the stand-ins' own logs tell
each document apart. At the end it prints and asserts: documents lost 0; no document downloaded
or OCR'd more often than its runs were started, and never by two runs at once; every document in
a final status; attempts never above the maximum; capacity leases and running Prefect runs back
to zero; no Gemini 429 caused by our own traffic. Exit code 1 if any fails.

    .venv/bin/python bench/chaos.py                 # the large setting: 200 documents
    .venv/bin/python bench/chaos.py --documents 12 --kills 3 --every 15   # the test suite's
    .venv/bin/python bench/chaos.py --docker --documents 60 --kills 10    # in containers

With `--docker` the pools are Docker pools (the image built here on the local base, a Docker
engine started if none answers): a run is killed with `docker kill` of its container, and a lost
host takes its containers with it (their processes carry its REGISTRE_HOST_ID).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
from checks import (  # bench/checks.py and bench/stack.py, beside this file
    FINAL,
    ROW_COLUMNS,
    Document,
    Duplicates,
    RunRecord,
    catalogue,
    duplicates,
    gemini_reads,
    not_final,
    over_attempts,
    run_record,
    wait_settled,
)
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort
from stack import Stack, is_prefect_worker, pids_with

from deployments.image import build
from sandbox.docker_engine import engine
from sandbox.registry import control

HOSTS = ("chaos-a", "chaos-b")
HOST_ENV = {
    "SERVER_MAX_CPU": "20", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "1",
    "OCR_WORKER_POOL_SIZE": "2", "QUEUE_LEASE_SECONDS": "90", "CAPACITY_LEASE_SECONDS": "30",
    "RETRY_BASE_SECONDS": "5", "GEMINI_MAX_RPM": "600", "GEMINI_MAX_TPM": "2000000",
    "WORKER_DRAIN_SECONDS": "60",
}  # fmt: skip
# A container may not ask for more vCPU than the machine has (2 here).
DOCKER_COSTS = {"COST_REGISTRE_CPU": "1", "COST_INDEX_OCR_CPU": "1", "COST_ACTE_OCR_CPU": "1"}


class Chaos(threading.Thread):
    """The faults, one every `every_s` seconds, in a shuffled order, until stopped."""

    def __init__(self, stack: Stack, kills: int, every_s: float, seed: int,
                 host_env: dict[str, str], docker: Any = None) -> None:  # fmt: skip
        """`docker`: a docker-py client when the pools are Docker pools."""
        super().__init__(name="chaos", daemon=True)
        self.stack, self.every_s = stack, every_s
        self.host_env, self.docker = host_env, docker
        self.rng = random.Random(seed)
        others = ["gemini_storm", "gemini_5xx", "registry_slow", "session_expiry",
                  "registry_500", "stall_download", "redis_restart", "supabase_drop",
                  "host_restart"]  # fmt: skip
        worker_kills = max(1, kills // 5)
        plan = ["kill_run"] * (kills - worker_kills) + ["kill_worker"] * worker_kills + others
        self.rng.shuffle(plan)
        self.plan = plan
        self.done: list[str] = []
        self.killed_runs: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while self.plan and not self.stop.wait(self.every_s):
            event = self.plan[0]
            try:
                what = getattr(self, event)()
            except Exception as exc:  # a fault that found nothing to hit is tried again later
                what = f"{event} failed: {type(exc).__name__}: {exc}"
            if what is None:
                continue  # nothing to hit yet (no run in progress): keep it for the next tick
            self.plan.pop(0)
            self.done.append(f"{time.strftime('%H:%M:%S')} {what}")
            print(f"  chaos: {what}", flush=True)

    def _our(self, marker: bytes) -> list[int]:
        ours = {p for h in HOSTS for p in pids_with(f"REGISTRE_HOST_ID={h}".encode())}
        return [p for p in pids_with_prefix(marker) if p in ours]

    def kill_run(self) -> str | None:
        if self.docker is not None:
            return self.kill_container()
        runs = flow_run_pids(self._our(b"PREFECT__FLOW_RUN_ID="))
        if not runs:
            return None
        pid, run_id = self.rng.choice(sorted(runs.items()))
        os.kill(pid, signal.SIGKILL)
        self.killed_runs.add(run_id)
        return f"SIGKILL flow run {run_id} (pid {pid})"

    def kill_container(self) -> str | None:
        found = self.docker.containers.list(filters={"label": "io.prefect.flow-run-id"})
        if not found:
            return None
        container = self.rng.choice(sorted(found, key=lambda c: c.id))
        container.kill()
        run_id = container.labels["io.prefect.flow-run-id"]
        self.killed_runs.add(run_id)
        return f"docker kill {container.name} (flow run {run_id})"

    def kill_worker(self) -> str | None:
        workers = [p for p in self._our(b"PREFECT_WORKER_QUERY_SECONDS=") if is_prefect_worker(p)]
        if not workers:
            return None
        pid = self.rng.choice(workers)
        os.kill(pid, signal.SIGKILL)
        return f"SIGKILL Prefect worker pid {pid}"

    def host_restart(self) -> str:
        host = HOSTS[1]
        killed = self.stack.kill_host(host)
        time.sleep(3)
        self.stack.start_host(host, **self.host_env)
        return f"host {host} lost ({killed} processes SIGKILLed) and started again"

    def redis_restart(self) -> str:
        self.stack.restart_redis(down_s=2)
        return "Redis restarted empty after 2 s down"

    def supabase_drop(self) -> str:
        self.stack.drop_supabase(down_s=4)
        return "Supabase dropped every connection for 4 s"

    def gemini_storm(self) -> str:
        faults(self.stack.gemini, rate_limit_count=15, rate_limit_retry_s=3)
        return "Gemini: a storm of 15 429s (retryDelay 3 s)"

    def gemini_5xx(self) -> str:
        faults(self.stack.gemini, error_status=503, error_count=8)
        return "Gemini: 8 x 503"

    def registry_slow(self) -> str:
        control.set_faults(self.stack.registry, latency_s=2.0)
        threading.Timer(20, control.set_faults, (self.stack.registry,), {"latency_s": 0.3}).start()
        return "registry: 2 s per response for 20 s"

    def session_expiry(self) -> str:
        return f"registry: {control.expire_sessions(self.stack.registry)} sessions expired"

    def registry_500(self) -> str:
        control.set_faults(self.stack.registry, fail_next_searches=3)
        return "registry: the next 3 searches answer 500"

    def stall_download(self) -> str:
        control.set_faults(self.stack.registry, stall_next_downloads=2)
        return "registry: the next 2 downloads stall halfway"


def wave_report(stack: Stack, docs: list[Document], ids: list[str]) -> tuple[Duplicates, dict]:
    """What the stand-ins saw of this wave against how often each document's runs ran."""
    served = control.counters(stack.registry)["downloads_by_document"]
    log = httpx.get(f"{stack.gemini}/_sandbox/stats").json()
    runs: dict[str, list[RunRecord]] = defaultdict(list)
    with get_client(sync_client=True) as client:
        found, wanted = [], set(ids)
        only_documents = FlowRunFilter(tags=FlowRunFilterTags(all_=["env:prod"]))
        while page := client.read_flow_runs(
            flow_run_filter=only_documents, limit=200, offset=len(found)
        ):
            found += page
        for run in found:
            if run.parameters.get("job_id") in wanted:
                runs[run.parameters["job_id"]].append(run_record(client, run))
    report = duplicates([(d, [i]) for d, i in zip(docs, ids, strict=True)], runs, served,
                        gemini_reads(log["log"]))  # fmt: skip
    return report, log


def diagnose(stack: Stack, ids: list[str]) -> None:
    """What is known of documents left not final: the row (without its texts) and every Prefect
    run of it with its state history, printed before the stack goes away."""
    with psycopg.connect(stack.dsn) as conn:
        found = conn.execute(
            "SELECT to_jsonb(q) - 'file_content' - 'boosted_file_content'"
            " - 'searchable_file_content' FROM extraction_queue q WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    for (row,) in found:
        print(f"  row {json.dumps(row, default=str, ensure_ascii=False)}", flush=True)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(
            all_=["env:prod"])), limit=200, sort=FlowRunSort.EXPECTED_START_TIME_DESC)  # fmt: skip
        for run in runs:
            if run.parameters.get("job_id") not in ids:
                continue
            history = [f"{s.timestamp:%H:%M:%S} {s.name} {(s.message or '')[:120]!r}"
                       for s in client.read_flow_run_states(run.id)]  # fmt: skip
            print(f"  run {run.name} {run.id} tags={run.tags}: {history}", flush=True)


def faults(gemini_url: str, **values: Any) -> None:
    httpx.post(f"{gemini_url}/_sandbox/faults", json=values).raise_for_status()


def pids_with_prefix(prefix: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(item.startswith(prefix) for item in environ):
                found.append(int(entry.name))
    return found


def flow_run_pids(pids: list[int]) -> dict[int, str]:
    runs = {}
    for pid in pids:
        try:
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                    runs[pid] = item.split(b"=", 1)[1].decode()
        except OSError:
            continue
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs of runs and workers")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between faults")
    parser.add_argument("--wave-timeout", type=float, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--docker", action="store_true", help="Docker pools: each run a container")
    parser.add_argument(
        "--prefect-on-postgres",
        action="store_true",
        help="the Prefect server on PostgreSQL (production's) instead of SQLite",
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the stack (hosts, servers, dockerd, containers) is torn down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    docs = catalogue()
    waves = [
        [docs[(start + i) % len(docs)] for i in range(min(len(docs), args.documents - start))]
        for start in range(0, args.documents, len(docs))
    ]
    failures: list[str] = []
    totals: Counter[str] = Counter()
    began = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="chaos-")
    stack = Stack(Path(tmp.name), gemini_delay_s=0.5, prefect_on_postgres=args.prefect_on_postgres)
    host_env = {**HOST_ENV, **DOCKER_COSTS} if args.docker else HOST_ENV
    with tmp, ExitStack() as contexts:
        client = None
        if args.docker:
            contexts.enter_context(engine(Path(tmp.name)))
            image = build(local=True)
            client = contexts.enter_context(closing(docker.from_env()))
        contexts.enter_context(stack)
        if args.docker:
            stack.deploy_docker(image, **host_env)
        else:
            stack.deploy()
        for host in HOSTS:
            stack.start_host(host, **host_env)
        chaos = Chaos(stack, args.kills, args.every, args.seed, host_env, client)
        time.sleep(10)  # the hosts register and their workers poll
        chaos.start()
        statuses: Counter[int] = Counter()
        for number, wave in enumerate(waves, start=1):
            control.reset_counters(stack.registry)
            httpx.post(f"{stack.gemini}/_sandbox/reset").raise_for_status()
            faults(stack.gemini, delay_s=0.5)
            ids = stack.insert([d.row for d in wave])
            deadline = time.monotonic() + args.wave_timeout
            while time.monotonic() < deadline:
                rows = stack.rows(ids)
                if len(rows) == len(ids) and all(r[0] in FINAL for r in rows.values()):
                    break
                time.sleep(2)
            rows = stack.rows(ids, ROW_COLUMNS)
            lost, over = not_final(rows, ids), over_attempts(rows)
            statuses.update(r[0] for r in rows.values())
            report, log = wave_report(stack, wave, ids)
            totals["extra downloads"] += report.extra_downloads
            totals["extra OCR"] += report.extra_ocr
            totals["unexplained"] += len(report.unexplained)
            totals["concurrent"] += len(report.concurrent)
            totals["completed twice"] += len(report.completed_twice)
            totals["own 429s"] += log["rate_limited"] - log["injected_rate_limited"]
            totals["injected 429s"] += log["injected_rate_limited"]
            totals["lost"] += len(lost)
            totals["attempts over the maximum"] += len(over)
            failures += [f"wave {number}: {x}" for x in report.failures()]
            failures += [f"wave {number}: lost or not final: {i} {rows.get(i)}" for i in lost]
            failures += [f"wave {number}: attempts over the maximum: {i}" for i in over]
            if lost:
                diagnose(stack, lost)
            errors = [r[5] for r in rows.values() if r[0] == 5]
            print(f"wave {number}: {len(wave)} documents, {len(lost)} not final, errors:"
                  f" {json.dumps(errors, ensure_ascii=False)[:400]}", flush=True)  # fmt: skip
        while chaos.plan and time.monotonic() - began < args.wave_timeout * len(waves):
            time.sleep(2)  # the faults not yet played (a small run ends before them)
        chaos.stop.set()
        chaos.join(60)
        state = wait_settled(stack)
        if state != (0, 0):
            failures.append(f"not back to zero: {state[0]} capacity leases, {state[1]} runs active")
        elapsed = time.monotonic() - began
        if failures:  # the hosts' logs outlive the stack
            kept = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
            for log in Path(tmp.name).glob("*.log"):
                shutil.copy(log, kept)
            print(f"logs kept in {kept}")

    kills = sum(1 for d in chaos.done if "SIGKILL" in d or "docker kill" in d)
    print(f"\n{args.documents} documents in {len(waves)} waves, {elapsed:.0f} s; {len(chaos.done)}"
          f" faults ({kills} kills):")  # fmt: skip
    for line in chaos.done:
        print(f"  {line}")
    print(f"final statuses: {dict(statuses)} (4 done, 5 error)")
    for key in ("lost", "unexplained", "concurrent", "completed twice", "attempts over the maximum",
                "own 429s", "extra downloads", "extra OCR", "injected 429s"):  # fmt: skip
        print(f"  {key:28} {totals[key]}")
    print(f"  {'capacity leases, runs active':28} {state[0]}, {state[1]}")
    if totals["own 429s"]:
        failures.append(f"{totals['own 429s']} Gemini 429s of our own traffic")
    if chaos.plan:
        failures.append(f"faults never played: {chaos.plan}")
    for line in failures:
        print(f"FAIL {line}")
    print("OK" if not failures else f"{len(failures)} FAILURES")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
