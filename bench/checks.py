"""The checks "nothing lost or processed twice" that the chaos run and the soak both make, from
the stand-ins' own counts (the registry's downloads per document, Gemini's reads per page or
acte) against the document runs' state histories in Prefect, the rows' final statuses and
attempts, and what is still held (capacity leases, runs in progress)."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from stack import Stack  # bench/stack.py, beside this file

from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS
from tasks.coordination.redis_keys import RedisKeys

FINAL = (4, 5)  # seed statuses: OCR complété (done), Erreur
ROW_COLUMNS = ("status_id, attemtps, max_attempts, ocr_attempts, ocr_max_attempts,"
               " coalesce(ocr_error, error_message)")  # fmt: skip
STAGES = ("registre", "ocr")


class Document:
    """One catalogue document as a request, and what the stand-ins call it in their logs."""

    def __init__(self, row: tuple[Any, ...], registry_ids: set[str], gemini_labels: set[str]):
        self.row = row
        self.registry_ids = registry_ids
        self.gemini_labels = gemini_labels  # "<id>#<page>" per index page, or "Acte <numero>"

    def __str__(self) -> str:
        return f"{self.row[0]} {self.row[1]}"


def catalogue() -> list[Document]:
    docs = [
        Document(("index", d.lot, d.circonscription, d.cadastre, d.designation, None), {d.id},
                 {f"{d.id}#{n}" for n in range(1, len(d.pages) + 1)})
        for d in INDEX_DOCUMENTS
    ] + [
        Document(("acte", a.numero, a.circonscription, None, None, a.type_document), {a.id},
                 {f"Acte {a.numero}"})
        for a in ACTES if not a.paper_only
    ] + [
        Document(("plan_cadastraux", p.lot, p.circonscription, p.cadastre, p.designation, None),
                 {v.id for v in p.versions}, set())
        for p in PLANS
    ]  # fmt: skip
    random.Random(7).shuffle(docs)
    return docs


@dataclass(frozen=True)
class RunRecord:
    """What one document run did: its stage, whether it ended Completed, and when it ran."""

    stage: str
    completed: bool
    spans: tuple[tuple[float, float], ...]  # (start, end) of each Running stretch, epoch s


def running_intervals(client: Any, run_id: Any) -> list[tuple[float, float]]:
    """When the run was Running, from its state history (a retried run runs more than once)."""
    states = sorted(client.read_flow_run_states(run_id), key=lambda s: s.timestamp)
    spans, opened = [], None
    for state in states:
        if state.type is StateType.RUNNING and opened is None:
            opened = state.timestamp.timestamp()
        elif state.type is not StateType.RUNNING and opened is not None:
            spans.append((opened, state.timestamp.timestamp()))
            opened = None
    if opened is not None:
        spans.append((opened, time.time()))
    return spans


def run_record(client: Any, run: FlowRun) -> RunRecord:
    stage = "registre" if run.name.startswith("registre") else "ocr"
    completed = bool(run.state and run.state.name == "Completed")
    return RunRecord(stage, completed, tuple(running_intervals(client, run.id)))


def overlaps(spans: Iterable[tuple[float, float]]) -> int:
    ordered = sorted(spans)
    return sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])


def gemini_reads(log: Iterable[dict[str, Any]]) -> Counter[str]:
    """Successful reads per page or acte label in the Gemini stand-in's request log."""
    return Counter(
        label
        for e in log
        if e["endpoint"] == "generateContent" and e["status"] == 200
        for label in e["documents"]
    )


@dataclass
class Duplicates:
    """Work done more often than the runs explain. `extra_*` are repeats a kill or a failed
    attempt explains (within the runs that were Running); the lists are failures."""

    extra_downloads: int = 0
    extra_ocr: int = 0
    unexplained: list[str] = field(default_factory=list)
    concurrent: list[str] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [
            f"{name}: {item}"
            for name, items in (("unexplained", self.unexplained),
                                ("concurrent", self.concurrent),
                                ("completed twice", self.completed_twice))
            for item in items
        ]  # fmt: skip


def duplicates(
    requests: list[tuple[Document, list[str]]],
    runs: dict[str, list[RunRecord]],
    served: dict[str, int],
    reads: Counter[str],
) -> Duplicates:
    """Each catalogue document with the ids of the rows that asked for it, the document runs
    per row id, the registry's downloads per registry id and Gemini's reads per label: no
    document served or read more often than its runs were Running, no two runs of one row's
    stage Running at once, no row's stage Completed twice."""
    found = Duplicates()
    for doc, ids in requests:
        for stage in STAGES:
            spans = 0
            for job_id in ids:
                mine = [r for r in runs.get(job_id, []) if r.stage == stage]
                if overlaps(span for r in mine for span in r.spans):
                    found.concurrent.append(f"{doc} ({stage}, row {job_id})")
                if sum(r.completed for r in mine) > 1:
                    found.completed_twice.append(f"{doc} ({stage}, row {job_id})")
                spans += sum(len(r.spans) for r in mine)
            if stage == "registre":
                seen = sum(served.get(i, 0) for i in doc.registry_ids)
                found.extra_downloads += max(0, seen - len(ids))
            else:  # an index document: its most-read page
                seen = max((reads[label] for label in doc.gemini_labels), default=0)
                found.extra_ocr += max(0, seen - len(ids))
            if seen > spans:  # more than once per time a run of it was Running
                found.unexplained.append(f"{doc} ({stage}): {seen} times, {spans} runs")
    return found


def not_final(rows: dict[str, tuple[Any, ...]], ids: list[str]) -> list[str]:
    """Rows lost or still in progress (`rows` as Stack.rows gives them, status first)."""
    return [i for i in ids if i not in rows or rows[i][0] not in FINAL]


def over_attempts(rows: dict[str, tuple[Any, ...]]) -> list[str]:
    """Rows (read with ROW_COLUMNS) whose attempts went above their maximum."""
    return [i for i, r in rows.items() if r[1] > r[2] or r[3] > r[4]]


def settled(stack: Stack) -> tuple[int, int]:
    """(capacity leases held, document runs Pending or Running)."""
    client = redis.Redis(port=stack.redis_port)
    try:
        leases = client.hlen(RedisKeys(stack.prefix).capacity_workers)
    finally:
        client.close()
    alive = FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=alive)), limit=200
        )
    return leases, sum(1 for r in runs if r.parameters.get("job_id"))


def wait_settled(stack: Stack, timeout_s: float = 180) -> tuple[int, int]:
    """Wait for no lease and no run in progress; returns what is left after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (state := settled(stack)) != (0, 0) and time.monotonic() < deadline:
        time.sleep(3)
    return state
