"""The whole stack under a steady stream of documents for hours, proving that nothing grows:
`registre deploy`, two `registre worker` hosts, a Prefect server of its own, its own Redis, the
three stand-ins (bench/stack.py, as the chaos run builds it), and catalogue documents of every
kind (index, acte, plan) added one every `--every-seconds`, with the retentions scaled down so
that they act within the run.

Every `--sample-seconds` it reads (bench/sampling.py): the Prefect database's files and rows
(runs, states, tasks, logs, artifacts, events), Redis's memory and keys, Storage's bytes, the
RSS, open files and threads of every long-lived process (the Prefect server, each `registre
worker`, each Prefect worker, the stand-ins, Redis), the Chromium and flow-run processes, the
documents finished and waiting. At the end it prints the table and each quantity's trend after
the warm-up, and fails (FAIL lines, exit code 1) when a quantity that should be bounded keeps
growing (bench/trends.py says how that is judged), when the last quarter's throughput is more
than 10 % below the first's, or when a document is lost or processed twice (bench/checks.py, the
chaos run's checks). Quantities that nothing bounds within the run are reported with the reason.

    .venv/bin/python bench/soak.py                     # 2 hours
    .venv/bin/python bench/soak.py --minutes 10 --sample-seconds 30
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from chaos import HOST_ENV  # bench/*.py, beside this file
from checks import (
    FINAL,
    ROW_COLUMNS,
    Document,
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
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterEndTime, FlowRunFilterTags
from sampling import PREFECT_TABLES, sample
from stack import Stack
from trends import Bound, Verdict, judge, throughput

from sandbox.registry import control

HOSTS = ("soak-a", "soak-b")
DEPTH = len(HOSTS) * (int(HOST_ENV["WORKER_COUNT"]) + int(HOST_ENV["OCR_WORKER_POOL_SIZE"]))
REBALANCE_EVERY_S = 30.0
VACUUM_LOOP = "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS"
DOCUMENT_RUN_MIN_DAYS = 0.0417  # Prefect's vacuum keeps runs more than an hour (3,603 s here)


def retentions(minutes: float) -> dict[str, str]:
    """Retentions scaled to the run (2 hours: rebalance runs 10 min, events 1 h, document runs
    1 h, the vacuum every 3 min), and the Prefect workers replaced every 30 runs (at the default
    200, a 2-hour run's workers would grow without reaching it); a variable already in the
    environment wins."""
    scaled = {
        "DOCUMENT_RUN_RETENTION_DAYS": str(DOCUMENT_RUN_MIN_DAYS),
        "REBALANCE_RUN_RETENTION_HOURS": f"{max(minutes / 12, 1) / 60:.4f}",
        "EVENT_RETENTION_HOURS": f"{max(minutes / 2, 2) / 60:.4f}",
        VACUUM_LOOP: f"{min(max(minutes * 60 / 40, 60), 300):.0f}",
        "WORKER_RECYCLE_RUNS": "30",
    }
    return {name: os.environ.get(name) or value for name, value in scaled.items()}


def bounds(env: dict[str, str], sample_s: float) -> dict[str, Bound]:
    """When each quantity should stop growing, from the retentions in force; Redis and the
    processes are bounded from the start (the warm-up aside)."""
    loop_s = float(env[VACUUM_LOOP])
    settles: dict[str, float] = {}
    why: dict[str, str] = {}
    ages_s = {  # how old a row can get: its retention, then the clean-up's period
        "DOCUMENT_RUN_RETENTION_DAYS": float(env["DOCUMENT_RUN_RETENTION_DAYS"]) * 86400 + loop_s,
        "REBALANCE_RUN_RETENTION_HOURS": float(env["REBALANCE_RUN_RETENTION_HOURS"]) * 3600
        + REBALANCE_EVERY_S,
        "EVENT_RETENTION_HOURS": float(env["EVENT_RETENTION_HOURS"]) * 3600 + loop_s,
    }
    for name, age_s in ages_s.items():  # the oldest row goes one clean-up late
        settles[name] = age_s + sample_s
        why[name] = f"{name}={env[name]}, cleaned every {age_s / 60:.0f} min at most"

    def after(*names: str) -> Bound:
        return Bound(max(settles[n] for n in names), "; ".join(why[n] for n in names))

    runs = ("DOCUMENT_RUN_RETENTION_DAYS", "REBALANCE_RUN_RETENTION_HOURS")
    found = {f"{table} rows": after(*runs) for table in PREFECT_TABLES}
    found["events rows"] = found["event_resources rows"] = after("EVENT_RETENTION_HOURS")
    found["prefect db MB"] = after(*ages_s)
    pdfs = "every download stores a new PDF (named with the time); nothing deletes them"
    found["storage MB"] = Bound(None, pdfs)
    found["documents final"] = Bound(None, "a running count: the throughput is judged from it")
    found["documents per min"] = Bound(None, "between samples: the throughput is judged below")
    # a backlog that keeps growing: the stream outruns the system (raise --every-seconds)
    found["backlog rows"] = Bound(0, "waiting and in progress", floor=DEPTH / 2)
    found["redis used MB"] = Bound(0, floor=0.5)
    found["redis keys"] = Bound(0, floor=10)
    found["worker rows"] = Bound(0, floor=1)
    found["chromium processes"] = Bound(0, floor=8)
    found["flow-run processes"] = Bound(0, floor=DEPTH)
    return found


def process_bound(name: str, catalogue_pass_s: float) -> Bound:
    """A long-lived process is bounded after the warm-up; a stand-in only once it has served
    every catalogue document (it caches what it renders and recognises)."""
    floor = 5 if name.endswith("RSS MB") else 8 if name.endswith("fds") else 4
    if name.startswith("stand-in "):
        why = (f"a stand-in caches each catalogue document the first time it serves it: one pass"
               f" through the catalogue takes {catalogue_pass_s / 60:.0f} min")  # fmt: skip
        return Bound(catalogue_pass_s, why, floor=floor)
    return Bound(0, floor=floor)


class Stream(threading.Thread):
    """Catalogue documents, one every `every_s`, in the catalogue's shuffled order, again and
    again, until stopped."""

    def __init__(self, stack: Stack, every_s: float) -> None:
        super().__init__(name="stream", daemon=True)
        self.stack, self.every_s = stack, every_s
        self.sent: dict[int, tuple[Document, list[str]]] = {}  # catalogue position -> its rows
        self.stop = threading.Event()

    def run(self) -> None:
        docs = catalogue()
        number = 0
        while not self.stop.is_set():
            position = number % len(docs)
            row_id = self.stack.insert([docs[position].row])[0]
            self.sent.setdefault(position, (docs[position], []))[1].append(row_id)
            number += 1
            self.stop.wait(self.every_s)

    def ids(self) -> list[str]:
        return [i for _, ids in list(self.sent.values()) for i in ids]


class Witness:
    """What the checks need that retention would delete before the end: every document run's
    state history, read soon after it ends, and the Gemini stand-in's request log, whose
    memory keeps the last 10,000 requests."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.runs: dict[Any, tuple[str, RunRecord]] = {}  # run id -> (row id, what it did)
        self.gemini_log: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.since = datetime.now(UTC)
        self.collected = time.monotonic()

    def collect(self, margin_s: float) -> None:
        """The runs that ended since the last call (with a margin), and the Gemini log."""
        cutoff, self.since = self.since - timedelta(seconds=margin_s), datetime.now(UTC)
        self.collected = time.monotonic()
        documents = FlowRunFilter(tags=FlowRunFilterTags(all_=["env:prod"]),
                                  end_time=FlowRunFilterEndTime(after_=cutoff))  # fmt: skip
        with get_client(sync_client=True) as client:
            found: list[Any] = []
            while page := client.read_flow_runs(
                flow_run_filter=documents, limit=200, offset=len(found)
            ):
                found += page
            for run in found:
                if job_id := run.parameters.get("job_id"):
                    self.runs[run.id] = (job_id, run_record(client, run))
        for entry in httpx.get(f"{self.stack.gemini}/_sandbox/stats", timeout=30).json()["log"]:
            key = (entry["t"], entry["endpoint"], entry["status"], *entry["documents"])
            self.gemini_log[key] = entry

    def by_row(self) -> dict[str, list[RunRecord]]:
        found: dict[str, list[RunRecord]] = defaultdict(list)
        for job_id, record in self.runs.values():
            found[job_id].append(record)
        return found


def print_table(times_s: list[float], series: dict[str, dict[float, float]],
                verdicts: dict[str, Verdict], columns: int = 10) -> None:  # fmt: skip
    """One line per quantity: its value at up to `columns` sample times, its trend, verdict."""
    step = max(1, round(len(times_s) / columns))
    shown = times_s[::step] if times_s[-1] in times_s[::step] else [*times_s[::step], times_s[-1]]
    head = "".join(f"{t / 60:>10.1f}" for t in shown)
    print(f"\n{'quantity (minutes ->)':38}{head}  {'slope/h':>9} {'growth':>7}  verdict")
    for name, values in series.items():
        cells = "".join(f"{values[t]:>10.4g}" if t in values else f"{'':>10}" for t in shown)
        v = verdicts[name]
        print(f"{name[:38]:38}{cells}  {v.slope_per_h:>9.3g} {v.growth:>+7.0%}  {v.status}")


def progress(t_s: float, reading: dict[str, float]) -> str:
    return (
        f"  {t_s / 60:6.1f} min: {reading['documents final']:.0f} final,"
        f" {reading['backlog rows']:.0f} in the backlog, Prefect db"
        f" {reading['prefect db MB']:.1f} MB, {reading['flow_run rows']:.0f} runs,"
        f" {reading['events rows']:.0f} events, server"
        f" {reading.get('prefect server RSS MB', 0):.0f} MB"
    )


def soak(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Run the stream, sampling; then drain the backlog and gather what the checks need."""
    samples: list[tuple[float, dict[str, float]]] = []
    margin_s = 2 * args.sample_seconds
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, \
            Stack(Path(tmp), gemini_delay_s=0.5, environ=env) as stack:  # fmt: skip
        stack.deploy()
        for host in HOSTS:
            stack.start_host(host, **HOST_ENV)
        time.sleep(10)  # the hosts register and their workers poll
        witness, stream = Witness(stack), Stream(stack, args.every_seconds)
        began = time.monotonic()
        end = began + args.minutes * 60
        stream.start()
        while True:
            now = time.monotonic()
            samples.append((now - began, sample(stack)))
            print(progress(*samples[-1]), flush=True)
            witness.collect(margin_s)
            if now >= end:
                break
            time.sleep(max(0.0, min(end, now + args.sample_seconds) - time.monotonic()))
        stream.stop.set()
        stream.join(30)
        ids = stream.ids()
        deadline = time.monotonic() + args.drain_minutes * 60
        while not_final(stack.rows(ids), ids) and time.monotonic() < deadline:
            time.sleep(5)
            if time.monotonic() - witness.collected >= args.sample_seconds:
                witness.collect(margin_s)
        state = wait_settled(stack)
        witness.collect(margin_s)
        return {
            "samples": samples,
            "ids": ids,
            "sent": list(stream.sent.values()),
            "rows": stack.rows(ids, ROW_COLUMNS),
            "served": control.counters(stack.registry)["downloads_by_document"],
            "gemini": httpx.get(f"{stack.gemini}/_sandbox/stats", timeout=30).json(),
            "runs": witness.by_row(),
            "reads": gemini_reads(witness.gemini_log.values()),
            "state": state,
        }


def check_documents(run: dict[str, Any]) -> list[str]:
    """The chaos run's checks over every document of the stream; prints their figures."""
    rows, ids, state = run["rows"], run["ids"], run["state"]
    lost, over = not_final(rows, ids), over_attempts(rows)
    found = duplicates(run["sent"], run["runs"], run["served"], run["reads"])
    own_429s = run["gemini"]["rate_limited"] - run["gemini"]["injected_rate_limited"]
    done = sum(1 for r in rows.values() if r[0] == FINAL[0])
    print(f"\n{len(ids)} documents, {done} done, {len(rows) - done} in error or not final;"
          f" lost {len(lost)}, attempts over the maximum {len(over)}, unexplained"
          f" {len(found.unexplained)}, two runs at once {len(found.concurrent)}, completed"
          f" twice {len(found.completed_twice)}, extra downloads {found.extra_downloads}, extra"
          f" OCR {found.extra_ocr}, own 429s {own_429s}; capacity leases, runs active left:"
          f" {state[0]}, {state[1]}")  # fmt: skip
    errors = sorted({str(r[5])[:120] for r in rows.values() if r[0] == FINAL[1]})
    if errors:
        print("errors:", *errors, sep="\n  ")
    failures = [f"lost or not final: {i} {rows.get(i)}" for i in lost]
    failures += [f"attempts over the maximum: {i}" for i in over]
    failures += found.failures()
    if state != (0, 0):
        failures.append(f"not back to zero: {state[0]} capacity leases, {state[1]} runs active")
    if own_429s:
        failures.append(f"{own_429s} Gemini 429s of our own traffic")
    return failures


def check_trends(samples: list[tuple[float, dict[str, float]]], limits: dict[str, Bound],
                 warmup_s: float, catalogue_pass_s: float,
                 ) -> tuple[list[str], dict[str, dict[float, float]]]:  # fmt: skip
    """The table, each quantity's trend and verdict, and the throughput's."""
    times = [t for t, _ in samples]
    series: dict[str, dict[float, float]] = defaultdict(dict)
    for t, reading in samples:
        for name, value in reading.items():
            series[name][t] = value
    for (t0, a), (t1, b) in itertools.pairwise(samples):
        series["documents per min"][t1] = (
            (b["documents final"] - a["documents final"]) * 60 / (t1 - t0)
        )
    verdicts = {}
    for name, values in series.items():
        bound = limits.get(name) or process_bound(name, catalogue_pass_s)
        verdicts[name] = judge(name, list(values), list(values.values()), bound, warmup_s)
    print_table(times, series, verdicts)
    print(f"\ntrends after the warm-up ({warmup_s / 60:.0f} min):")
    for v in verdicts.values():
        print(f"  {v.status:8} {v.name}: {v.slope_per_h:+.4g}/h, {v.growth:+.1%}. {v.text}")
    finals = series["documents final"]
    status, text = throughput(list(finals), list(finals.values()), warmup_s, DEPTH)
    print(f"  {status:8} throughput: {text}")
    failures = [f"{v.name} keeps growing: {v.text}" for v in verdicts.values()
                if v.status == "FAIL"]  # fmt: skip
    if status == "FAIL":
        failures.append(f"throughput fell: {text}")
    return failures, series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120, help="how long the stream runs")
    parser.add_argument("--every-seconds", type=float, default=20, help="one document every")
    parser.add_argument("--sample-seconds", type=float, default=120)
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run not judged")
    parser.add_argument("--drain-minutes", type=float, default=15, help="to finish the backlog")
    parser.add_argument("--csv", type=Path, help="write every sample there")
    args = parser.parse_args(argv)

    env = retentions(args.minutes)
    print(f"soak: {args.minutes:g} min, a document every {args.every_seconds:g} s, a sample every"
          f" {args.sample_seconds:g} s;", ", ".join(f"{k}={v}" for k, v in env.items()),
          flush=True)  # fmt: skip
    began = time.monotonic()
    run = soak(args, env)
    failures = check_documents(run)
    catalogue_pass_s = len(catalogue()) * args.every_seconds + args.sample_seconds
    trend_failures, series = check_trends(
        run["samples"], bounds(env, args.sample_seconds), args.warmup * args.minutes * 60,
        catalogue_pass_s,
    )  # fmt: skip
    failures += trend_failures
    if args.csv:
        write_csv(args.csv, [t for t, _ in run["samples"]], series)
    print(f"\n{(time.monotonic() - began) / 60:.1f} min in all")
    for line in failures:
        print(f"FAIL {line}")
    print("OK" if not failures else f"{len(failures)} FAILURES", flush=True)
    return 1 if failures else 0


def write_csv(path: Path, times: list[float], series: dict[str, dict[float, float]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["minutes", *series])
        for t in times:
            writer.writerow([f"{t / 60:.2f}", *(series[n].get(t, "") for n in series)])


if __name__ == "__main__":
    sys.exit(main())
