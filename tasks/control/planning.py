"""Pure planning for the control plane: what a host offers, the pool and queue limits over the
live hosts, the free slots, the runs to create. No Redis, Supabase or Prefect here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from tasks.control.allocation import Split, allocate, ocr_capacity
from tasks.control.pools import (
    DOCUMENT_DEPLOYMENTS,
    OCR_ACTE,
    OCR_INDEX,
    OCR_POOL,
    REGISTRE,
    REGISTRE_POOL,
    DocumentDeployment,
)
from tasks.coordination.capacity.budget import (
    Budget,
    Cost,
    WorkerKind,
    max_count,
)
from tasks.failures import ConfigError
from tasks.queue.jobs import Claimable
from tasks.services import cost_table, settings_budget
from tasks.settings import Settings

RUN_NAME_NUMBER_MAX = 60  # characters of the document number kept in a run's name
RUN_NAME_SOURCE_MAX = 20  # and of its source ("plan_cadastraux" has 15)
INSUFFICIENT = "Insufficient server capacity"  # the seed's words, which operators know
_CAPACITY_HINT = (
    "Lower the counts or the COST_* table, or set SERVER_MAX_CPU / SERVER_MAX_RAM to the"
    " host's real size if it is larger"
)


class InsufficientCapacity(ConfigError):
    """The host's budget cannot hold what its configuration asks for."""


def amount(x: float) -> str:
    """2.50 -> "2.5", 6.0 -> "6"."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def shortfall(what: str, need: Cost, have: Budget) -> str:
    """ "Insufficient server capacity: ..." naming the resource short and the numbers."""
    return f"{INSUFFICIENT}: {_lacking(what, need, have)}"


def _lacking(what: str, need: Cost, have: Budget) -> str:
    short = [
        f"{name} needs {amount(n)} {unit}, {amount(max(0.0, h))} {unit} available"
        for name, unit, n, h in (
            ("CPU", "vCPU", need.cpu, have.cpu),
            ("RAM", "GB", need.ram, have.ram),
        )
        if n > h + 1e-9
    ]
    return f"{what}: " + "; ".join(short)


def _runs(n: int, kind: str) -> str:
    return f"{n} {kind} run" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class HostOffer:
    """The runs a host's workers take at most (their `--limit`), and why some kind got 0."""

    registre: int
    ocr: int
    notes: tuple[str, ...] = ()

    def as_runs(self) -> dict[str, int]:
        return {REGISTRE_POOL: self.registre, OCR_POOL: self.ocr}


def host_offer(
    budget: Budget,
    costs: Mapping[WorkerKind, Cost],
    *,
    worker_count: int,
    ocr_pool_size: int,
    min_index: int,
    min_acte: int,
    pools: Iterable[str] = (REGISTRE_POOL, OCR_POOL),
) -> HostOffer:
    """R = min(WORKER_COUNT, registre runs that fit beside the OCR minimums), O = min(
    OCR_WORKER_POOL_SIZE, OCR runs that fit in what R leaves, counted as an even index/acte mix).

    Raises InsufficientCapacity when a host running OCR cannot hold the OCR minimums: their
    documents would wait for ever.
    """
    pools = set(pools)
    index, acte, registre = (
        costs[k] for k in (WorkerKind.INDEX_OCR, WorkerKind.ACTE_OCR, WorkerKind.REGISTRE)
    )
    minimums = index * min_index + acte * min_acte if OCR_POOL in pools else Cost(0, 0)
    if not minimums.fits(budget):
        raise InsufficientCapacity(
            shortfall(
                f"the OCR minimums ({min_index} index + {min_acte} acte runs)", minimums, budget
            )
        )
    notes = []
    r = 0
    if REGISTRE_POOL in pools and worker_count > 0:
        room = budget + minimums * -1
        r = min(worker_count, max_count(registre, room))
        if r == 0:
            after = " beside the OCR minimums" if OCR_POOL in pools else ""
            notes.append(shortfall(f"one registre run{after}", registre, room))
    o = 0
    if OCR_POOL in pools and ocr_pool_size > 0:
        left = budget + registre * -r
        o = min(ocr_pool_size, max(min_index + min_acte, max_count((index + acte) * 0.5, left)))
        if o == 0:
            notes.append(shortfall("one OCR run", index, left))
    return HostOffer(r, o, tuple(notes))


@dataclass(frozen=True)
class CapacityCheck:
    """The counts a host runs (its configured ones when they fit), and what was reduced."""

    worker_count: int
    ocr_pool_size: int
    warnings: tuple[str, ...] = ()


def check_capacity(
    budget: Budget,
    costs: Mapping[WorkerKind, Cost],
    *,
    worker_count: int,
    ocr_pool_size: int,
    min_index: int,
    min_acte: int,
    pools: Iterable[str] = (REGISTRE_POOL, OCR_POOL),
    overcommit: Literal["refuse", "reduce"] = "refuse",
) -> CapacityCheck:
    """The seed's start-up check of WORKER_COUNT and OCR_WORKER_POOL_SIZE against the host's
    budget, before anything starts. Counts that fit pass unchanged, so host_offer then runs
    exactly them. Counts that do not are refused (InsufficientCapacity naming the resource, the
    need and the budget) or, with overcommit="reduce", cut to what host_offer runs, with a warning
    saying to what. Never accepted, in either mode: an OCR pool below its minimums, minimums
    that do not fit, a stage cut to 0 runs; its documents would wait for ever."""
    pools = set(pools)
    registre_here, ocr_here = REGISTRE_POOL in pools, OCR_POOL in pools
    w = worker_count if registre_here else 0
    p = ocr_pool_size if ocr_here else 0
    if ocr_here and p < min_index + min_acte:
        raise ConfigError(
            f"OCR_WORKER_POOL_SIZE={p} cannot hold OCR_MIN_INDEX_WORKERS={min_index} +"
            f" OCR_MIN_ACTE_WORKERS={min_acte}: a kind of document would never be read (a host"
            " without OCR runs `registre worker --pool registre`)"
        )
    try:
        # Registre runs are cut first, to what fits beside the OCR minimums, then the OCR pool
        # to what they leave: a download only feeds the OCR queue, so downloads that crowd OCR
        # out leave documents at "ready for OCR" for ever, while fewer downloads still flow.
        offer = host_offer(
            budget, costs, worker_count=w, ocr_pool_size=p, min_index=min_index,
            min_acte=min_acte, pools=pools,
        )  # fmt: skip
    except InsufficientCapacity as exc:
        raise InsufficientCapacity(f"{exc}. {_CAPACITY_HINT}") from None
    if (offer.registre, offer.ocr) == (w, p):
        return CapacityCheck(worker_count, ocr_pool_size)

    short = shortfalls(budget, costs, offer, worker_count=w, ocr_pool_size=p,
                       min_index=min_index, min_acte=min_acte, ocr_here=ocr_here,
                       overcommit=overcommit)  # fmt: skip
    starved = [s for s in short if s.fits == 0]
    if overcommit != "reduce":
        reduce = (
            f", or set CAPACITY_OVERCOMMIT=reduce to run {_runs(offer.registre, 'registre')}"
            f" + {_runs(offer.ocr, 'OCR')}"
        )
        raise InsufficientCapacity(
            f"{INSUFFICIENT}: {'; '.join(s.why for s in short)}. {_CAPACITY_HINT}"
            + ("" if starved else reduce)
        )
    if starved:
        raise InsufficientCapacity(
            f"{INSUFFICIENT}: {starved[0].why}. CAPACITY_OVERCOMMIT=reduce would leave"
            f" {starved[0].variable}=0 and its documents waiting for ever. {_CAPACITY_HINT}"
        )
    warnings = tuple(
        f"{INSUFFICIENT}: {s.why}; CAPACITY_OVERCOMMIT=reduce: {s.variable} reduced from"
        f" {s.configured} to {s.fits}"
        for s in short
    )
    return CapacityCheck(
        offer.registre if registre_here else worker_count,
        offer.ocr if ocr_here else ocr_pool_size,
        warnings,
    )


class Shortfall(NamedTuple):
    variable: str  # WORKER_COUNT or OCR_WORKER_POOL_SIZE
    configured: int
    fits: int
    why: str  # the resource that lacks, the need and the budget


def shortfalls(
    budget: Budget,
    costs: Mapping[WorkerKind, Cost],
    offer: HostOffer,
    *,
    worker_count: int,
    ocr_pool_size: int,
    min_index: int,
    min_acte: int,
    ocr_here: bool,
    overcommit: Literal["refuse", "reduce"],
) -> list[Shortfall]:
    """The configured counts the host's offer cuts, each with what it lacks."""
    w, p = worker_count, ocr_pool_size
    registre = costs[WorkerKind.REGISTRE]
    ocr_each = (costs[WorkerKind.INDEX_OCR] + costs[WorkerKind.ACTE_OCR]) * 0.5
    minimums = costs[WorkerKind.INDEX_OCR] * min_index + costs[WorkerKind.ACTE_OCR] * min_acte
    short = []
    if offer.registre < w:
        what, need = f"WORKER_COUNT={_runs(w, 'registre')}", registre * w
        if ocr_here:
            what += f" beside the OCR minimums ({min_index} index + {min_acte} acte)"
            need += minimums
        short.append(Shortfall("WORKER_COUNT", w, offer.registre, _lacking(what, need, budget)))
    if offer.ocr < p:
        r = offer.registre if overcommit == "reduce" else w  # what runs beside the pool
        what = f"{_runs(r, 'registre')} + OCR_WORKER_POOL_SIZE={_runs(p, 'OCR')}"
        why = _lacking(what, registre * r + ocr_each * p, budget)
        short.append(Shortfall("OCR_WORKER_POOL_SIZE", p, offer.ocr, why))
    return short


def _configured_counts(settings: Settings) -> dict[str, int]:
    """The counts host_offer and check_capacity weigh against a host's budget, as configured."""
    return {
        "worker_count": settings.worker_count,
        "ocr_pool_size": settings.ocr_worker_pool_size,
        "min_index": settings.ocr_min_index_workers,
        "min_acte": settings.ocr_min_acte_workers,
    }


def settings_offer(settings: Settings, pools: Iterable[str]) -> HostOffer:
    """host_offer for a host's settings: what its workers take at most."""
    budget, costs = settings_budget(settings), cost_table(settings)
    return host_offer(budget, costs, **_configured_counts(settings), pools=pools)


def settings_check(settings: Settings, pools: Iterable[str]) -> CapacityCheck:
    """check_capacity for a host's settings, with its CAPACITY_OVERCOMMIT."""
    budget, costs = settings_budget(settings), cost_table(settings)
    return check_capacity(
        budget,
        costs,
        **_configured_counts(settings),
        pools=pools,
        overcommit=settings.capacity_overcommit,
    )


@dataclass(frozen=True)
class Limits:
    """The Prefect limits over every live host: pools `registre` and `ocr`, the OCR queues."""

    registre: int
    ocr: int
    split: Split
    notes: tuple[str, ...] = field(default=(), compare=False)

    def deployment_limit(self, deployment: DocumentDeployment) -> int:
        return {REGISTRE: self.registre, OCR_INDEX: self.split.index, OCR_ACTE: self.split.acte}[
            deployment
        ]

    def as_json(self) -> dict[str, int]:
        return {
            "registre": self.registre,
            "ocr": self.ocr,
            "index": self.split.index,
            "acte": self.split.acte,
        }


NO_LIMITS = Limits(0, 0, Split(0, 0))


def plan_limits(
    budgets: Mapping[str, Budget],
    offers: Mapping[str, Mapping[str, int]],
    costs: Mapping[WorkerKind, Cost],
    *,
    index_waiting: int,
    acte_waiting: int,
    min_index: int,
    min_acte: int,
) -> Limits:
    """Pool `registre` = ΣR, pool `ocr` = ΣO over the live hosts; the index/acte queues split ΣO
    with the seed formula, kept inside what the summed budget leaves after ΣR registre runs."""
    if not budgets:
        return NO_LIMITS
    r = sum(offer.get(REGISTRE_POOL, 0) for offer in offers.values())
    o = sum(offer.get(OCR_POOL, 0) for offer in offers.values())
    total = sum(budgets.values(), Budget(0, 0))
    room = ocr_capacity(total, r, dict(costs))
    split = allocate(
        o,
        index_waiting,
        acte_waiting,
        min_index=min_index,
        min_acte=min_acte,
        capacity=room,
        costs=dict(costs),
    )
    return Limits(r, o, split)


def free_slots(
    limits: Limits, active: Mapping[DocumentDeployment, int]
) -> dict[DocumentDeployment, int]:
    """Slots each document deployment may still fill: its own limit, and for OCR the pool's."""
    free = {d: max(0, limits.deployment_limit(d) - active.get(d, 0)) for d in DOCUMENT_DEPLOYMENTS}
    ocr_left = max(0, limits.ocr - active.get(OCR_INDEX, 0) - active.get(OCR_ACTE, 0))
    free[OCR_INDEX] = min(free[OCR_INDEX], ocr_left)
    free[OCR_ACTE] = min(free[OCR_ACTE], ocr_left - free[OCR_INDEX])
    return free


def runs_to_create(
    claimable: Iterable[Claimable], busy: set[tuple[str, str]], free: int
) -> list[Claimable]:
    """The first `free` rows, in claim order, that have no run in progress yet."""
    chosen = [row for row in claimable if (row.env, row.id) not in busy]
    return chosen[: max(0, free)]


def run_name(deployment: DocumentDeployment, row: Claimable) -> str:
    """`<stage>-<env>-<source>-<number>`, the number as the operator types it: its spaces kept
    (any whitespace, non-breaking spaces too, made one space), so typing "2 274 178" in the UI's
    search finds it; bounded whatever the row holds (the claim refuses a bad row later)."""
    source = _one_line(row.source, RUN_NAME_SOURCE_MAX)
    number = _one_line(row.number, RUN_NAME_NUMBER_MAX)
    return f"{deployment.stage.value}-{row.env}-{source}-{number}"


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit] or "?"


def idempotency_key(deployment: DocumentDeployment, row: Claimable) -> str:
    """Same row, same version: the same run; a row written since (retried, put back) gets a new
    one."""
    return f"{deployment.flow}:{row.env}:{row.id}:{row.version}"
