from __future__ import annotations

import math
from dataclasses import dataclass

from tasks.coordination.capacity.budget import DEFAULT_COSTS, Budget, Cost, WorkerKind

__all__ = ["Split", "allocate", "js_round", "ocr_capacity", "seed_split"]


@dataclass(frozen=True)
class Split:
    index: int
    acte: int

    @property
    def total(self) -> int:
        return self.index + self.acte

    def cost(self, costs: dict[WorkerKind, Cost]) -> Cost:
        return costs[WorkerKind.INDEX_OCR] * self.index + costs[WorkerKind.ACTE_OCR] * self.acte

    def as_json(self) -> dict[str, int]:
        """The `worker_pool:allocation` record operators know."""
        return {"indexWorkers": self.index, "acteWorkers": self.acte, "totalWorkers": self.total}


def js_round(x: float) -> int:
    """JavaScript's Math.round: halves go up (Python's round(2.5) is 2)."""
    return math.floor(x + 0.5)


def seed_split(
    pool_size: int, index_depth: int, acte_depth: int, *, min_index: int = 1, min_acte: int = 1
) -> Split:
    """The seed's index/acte split of an OCR pool (DOMAIN.md §4.3).

    Proportional to the waiting documents; then the index minimum; then the acte minimum, which
    wins. Unlike the seed, neither side goes below zero when a minimum exceeds the pool.
    """
    waiting = index_depth + acte_depth
    index = pool_size // 2 if waiting == 0 else js_round(pool_size * index_depth / waiting)
    if index < min_index:
        index = min(min_index, pool_size)
    if pool_size - index < min_acte:
        index = max(0, pool_size - min_acte)
    return Split(index, pool_size - index)


def ocr_capacity(budget: Budget, registre_runs: int, costs: dict[WorkerKind, Cost]) -> Budget:
    """What the budget leaves for OCR once `registre_runs` registry runs hold theirs."""
    left = budget + costs[WorkerKind.REGISTRE] * -registre_runs
    return Budget(max(0.0, left.cpu), max(0.0, left.ram))


def allocate(
    pool_size: int,
    index_depth: int,
    acte_depth: int,
    *,
    min_index: int = 1,
    min_acte: int = 1,
    capacity: Budget | None = None,
    costs: dict[WorkerKind, Cost] = DEFAULT_COSTS,
) -> Split:
    """The seed's split, shrunk to the largest pool whose split fits `capacity`.

    Shrinking the pool rather than trimming one side keeps the proportions and the minimums;
    since an index slot costs more than an acte slot, the cost is checked per split.
    """
    for size in range(pool_size, -1, -1):
        split = seed_split(size, index_depth, acte_depth, min_index=min_index, min_acte=min_acte)
        if capacity is None or split.cost(costs).fits(capacity):
            return split
    raise AssertionError("an empty split always fits")  # pragma: no cover
