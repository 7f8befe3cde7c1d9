"""Documents through the whole stack: `registre deploy`, one `registre worker` host, a Prefect
server of its own, the three stand-ins at fixed latencies.

Prints, from the Prefect API and the queue:
- waiting -> run started with a free slot (median, p95): documents added one at a time;
- Prefect's overhead per run, created -> Running (the flow's first line), against the floor any
  flow run pays on this machine: a fresh `python -c "import prefect"`, measured in the same run;
- slot utilisation with a backlog (busy slot-seconds / available slot-seconds, per pool);
- the utilisation projected at the real site's latencies (download 60-180 s, OCR 30-180 s),
  from the idle time each slot showed between two runs.

    .venv/bin/python bench/pipeline.py [--documents 100] [--registre 2] [--ocr 2] [--cold]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefect import get_client
from stack import ROOT, Stack  # bench/stack.py, beside this file

from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS

REAL = {"registre": (60, 180), "ocr": (30, 180)}  # seconds per document at the real site
INDEX = [(d.lot, d.circonscription, d.cadastre, d.designation) for d in INDEX_DOCUMENTS]
ACTE_ROWS = [a for a in ACTES if not a.paper_only]


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def import_seconds(module: str, times: int = 3) -> float:
    """The median seconds a fresh Python process takes to import `module` (and exit)."""
    taken = []
    for _ in range(times):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)
        taken.append(time.monotonic() - start)
    return statistics.median(taken)


def requests(n: int, offset: int = 0) -> list[tuple]:
    """Mixed documents: two actes in five, index documents otherwise."""
    rows = []
    for i in range(offset, offset + n):
        if i % 5 in (1, 3):
            a = ACTE_ROWS[i % len(ACTE_ROWS)]
            rows.append(("acte", a.numero, a.circonscription, None, None, a.type_document))
        else:
            lot, circ, cadastre, designation = INDEX[i % len(INDEX)]
            rows.append(("index", lot, circ, cadastre, designation, None))
    return rows


def wait_final(stack: Stack, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s in (4, 5) for s, _ in stack.rows(ids).values()):
            return
        time.sleep(1)
    raise RuntimeError(f"documents not final after {timeout:.0f} s")


def document_runs(job_ids: set[str]) -> list:
    with get_client(sync_client=True) as client:
        runs, offset = [], 0
        while page := client.read_flow_runs(limit=200, offset=offset):
            runs += page
            offset += len(page)
    return [r for r in runs if r.parameters.get("job_id") in job_ids and r.start_time]


def pending_at(runs: list) -> dict[str, float]:
    """Per run, when it went Pending (its worker took it), from its state history."""
    with get_client(sync_client=True) as client:
        found = {}
        for run in runs:
            states = client.read_flow_run_states(run.id)
            pending = [s.timestamp for s in states if s.type.value == "PENDING"]
            if pending:
                found[str(run.id)] = min(pending).timestamp()
        return found


def utilisation(runs: list, slots: int) -> float:
    """Busy / available slot-seconds over the pool's window (first run created, last ended)."""
    begin = min(r.created for r in runs)
    end = max(r.end_time for r in runs)
    busy = sum((r.end_time - r.start_time).total_seconds() for r in runs)
    return busy / (slots * (end - begin).total_seconds())


def gaps(runs: list, ready: dict[str, object]) -> list[float]:
    """Per run, the seconds its slot stood idle before it: from the later of its document being
    ready and the last end of a run of the same pool before it was created, to its start."""
    ends = sorted(r.end_time for r in runs)
    found = []
    for run in runs:
        freed = [e for e in ends if e <= run.created]
        since = max([ready[run.parameters["job_id"]], *freed[-1:]])
        found.append((run.start_time - since).total_seconds())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--registre", type=int, default=2, help="WORKER_COUNT")
    parser.add_argument("--ocr", type=int, default=2, help="OCR_WORKER_POOL_SIZE")
    parser.add_argument("--latency", type=float, default=0.3, help="registry, per response, s")
    parser.add_argument("--gemini-delay", type=float, default=1.0, help="per Gemini call, s")
    parser.add_argument("--singles", type=int, default=5, help="documents added one at a time")
    parser.add_argument("--cold", action="store_true", help="WORKER_WARM_STARTS=false")
    args = parser.parse_args()

    floor = import_seconds("prefect")  # what any flow run pays before its own code
    flow_imports = {m: import_seconds(m) for m in ("flows.registre", "flows.ocr")}
    tmp = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
    stack = Stack(Path(tmp.name), registry_latency_s=args.latency, gemini_delay_s=args.gemini_delay)
    with tmp, stack:
        stack.deploy()
        cpu = 3 * args.registre + 1.25 * args.ocr + 2.5
        slots = {"WORKER_COUNT": str(args.registre), "OCR_WORKER_POOL_SIZE": str(args.ocr)}
        warm = {"WORKER_WARM_STARTS": str(not args.cold).lower()}
        stack.start_host(
            "bench", SERVER_MAX_CPU=str(cpu / 0.8), SERVER_MAX_RAM="64", **slots, **warm
        )
        time.sleep(10)  # the host registers and its workers poll

        starts, alone = [], []  # waiting -> started; created -> Running, no backlog
        for i in range(args.singles):
            [job_id] = stack.insert(requests(1, offset=i * 5))  # an index document each time
            wait_final(stack, [job_id], 600)
            created = stack.rows([job_id])[job_id][1]
            run = next(r for r in document_runs({job_id}) if r.name.startswith("registre"))
            starts.append((run.start_time - created).total_seconds())
            alone.append((run.start_time - run.created).total_seconds())

        began = time.monotonic()
        ids = stack.insert(requests(args.documents, offset=args.singles * 5))
        inserted = stack.rows(ids)[ids[0]][1]
        wait_final(stack, ids, 3600)
        elapsed = time.monotonic() - began
        runs = document_runs(set(ids))
        pending = pending_at(runs)  # while the stack's server is up

    start_median, start_p95 = median_p95(starts)
    overhead = [(r.start_time - r.created).total_seconds() for r in runs]
    over_median, over_p95 = median_p95(overhead)
    taken = [pending[str(r.id)] - r.created.timestamp() for r in runs if str(r.id) in pending]
    started = [r.start_time.timestamp() - pending[str(r.id)] for r in runs if str(r.id) in pending]
    print(
        f"{args.documents} documents in {elapsed:.0f} s, {len(runs)} runs"
        f" (registry {args.latency} s per response, Gemini {args.gemini_delay} s per call,"
        f" {'cold' if args.cold else 'warm'} starts)"
    )
    print(
        f"waiting -> run started, free slot ({args.singles} documents): median"
        f" {start_median:.1f} s, p95 {start_p95:.1f} s (target: median <= 5 s)"
    )
    print(
        f"Prefect overhead per run, created -> Running: median {over_median:.1f} s, p95"
        f" {over_p95:.1f} s; floor, a fresh `import prefect`: {floor:.1f} s; ratio"
        f" {over_median / floor:.2f} (target <= 2)"
    )
    print(
        f"  a document alone ({args.singles}, no backlog): created -> Running median"
        f" {statistics.median(alone):.1f} s, ratio {statistics.median(alone) / floor:.2f}"
    )
    print(
        f"  with the backlog, created -> Pending (the worker takes it): median"
        f" {statistics.median(taken):.1f} s; Pending -> Running (process, imports, engine):"
        f" median {statistics.median(started):.1f} s"
    )
    print("a fresh import of " + ", ".join(f"{m}: {s:.1f} s" for m, s in flow_imports.items()))
    print("pool      slots  runs  mean run s  utilisation  idle s/run  projected (min/mean/max)")
    downloaded = {r.parameters["job_id"]: r.end_time for r in runs if r.name.startswith("regis")}
    for pool, slots in (("registre", args.registre), ("ocr", args.ocr)):
        mine = [r for r in runs if r.name.startswith(pool)]
        ready = {i: inserted for i in ids} if pool == "registre" else downloaded
        used = utilisation(mine, slots)
        idle = statistics.median(gaps(mine, ready))
        mean_run = statistics.mean((r.end_time - r.start_time).total_seconds() for r in mine)
        low, high = REAL[pool]
        projected = [work / (work + idle) for work in (low, (low + high) / 2, high)]
        print(
            f"{pool:9} {slots:5} {len(mine):5} {mean_run:11.1f} {used:12.2f} {idle:11.1f}  "
            + " / ".join(f"{p:.2f}" for p in projected)
            + "  (target: idle <= 6 s)"
        )


if __name__ == "__main__":
    main()
