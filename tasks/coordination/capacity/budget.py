"""Pure capacity arithmetic: the cost of each kind of run, a host's budget, and whether a number
of workers fits it. No Redis here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_COSTS",
    "Budget",
    "CapacityPlan",
    "Cost",
    "WorkerKind",
    "host_budget",
    "max_count",
    "plan_capacity",
]

_EPSILON = 1e-9  # float sums of costs such as 0.1 must not refuse an exact fit


class WorkerKind(StrEnum):
    REGISTRE = "registre"
    INDEX_OCR = "index-ocr"
    ACTE_OCR = "acte-ocr"


@dataclass(frozen=True)
class Cost:
    cpu: float  # vCPU
    ram: float  # GB

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.cpu + other.cpu, self.ram + other.ram)

    def __mul__(self, n: float) -> Cost:
        return Cost(self.cpu * n, self.ram * n)

    def fits(self, budget: Budget) -> bool:
        return self.cpu <= budget.cpu + _EPSILON and self.ram <= budget.ram + _EPSILON


Budget = Cost  # what a host may spend: max minus its reserve

DEFAULT_COSTS = {
    WorkerKind.REGISTRE: Cost(3, 1),
    WorkerKind.INDEX_OCR: Cost(1.5, 0.75),
    WorkerKind.ACTE_OCR: Cost(1, 0.5),
}


def host_budget(
    max_cpu: float, max_ram: float, reserve_cpu_percent: float, reserve_ram_percent: float
) -> Budget:
    return Budget(
        max_cpu - max_cpu * reserve_cpu_percent / 100,
        max_ram - max_ram * reserve_ram_percent / 100,
    )


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    budget: Budget
    registre: int
    ocr: int
    need: Cost
    fits: bool
    max_registre: int  # with the requested OCR workers
    max_ocr: int  # with the requested registre workers
    max_registre_alone: int
    max_ocr_alone: int

    @property
    def cpu_percent(self) -> float:
        return 100 * self.need.cpu / self.budget.cpu if self.budget.cpu else math.inf

    @property
    def ram_percent(self) -> float:
        return 100 * self.need.ram / self.budget.ram if self.budget.ram else math.inf


def max_count(per_worker: Cost, room: Cost) -> int:
    if room.cpu < -_EPSILON or room.ram < -_EPSILON:
        return 0
    counts = [
        math.floor((have + _EPSILON) / each)
        for have, each in ((room.cpu, per_worker.cpu), (room.ram, per_worker.ram))
        if each > 0
    ]
    return min(counts) if counts else 0  # a free worker kind has no capacity bound


def plan_capacity(
    budget: Budget, costs: dict[WorkerKind, Cost], *, registre: int, ocr: int
) -> CapacityPlan:
    """What `registre` registry workers and `ocr` OCR workers need from a budget.

    OCR workers count as an even index/acte mix (the average of the two costs), as the seed did.
    """
    ocr_each = (costs[WorkerKind.INDEX_OCR] + costs[WorkerKind.ACTE_OCR]) * 0.5
    registre_each = costs[WorkerKind.REGISTRE]
    need = registre_each * registre + ocr_each * ocr
    return CapacityPlan(
        budget=budget,
        registre=registre,
        ocr=ocr,
        need=need,
        fits=need.fits(budget),
        max_registre=max_count(registre_each, budget + ocr_each * -ocr),
        max_ocr=max_count(ocr_each, budget + registre_each * -registre),
        max_registre_alone=max_count(registre_each, budget),
        max_ocr_alone=max_count(ocr_each, budget),
    )
