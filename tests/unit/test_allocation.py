from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.control.allocation import Split, allocate, js_round, ocr_capacity, seed_split
from tasks.coordination.capacity.budget import DEFAULT_COSTS, Budget, Cost, WorkerKind


@pytest.mark.parametrize(
    ("pool", "index_docs", "acte_docs", "expected"),
    [
        (15, 0, 0, (7, 8)),  # empty queue
        (15, 50, 5, (14, 1)),  # 13.64 -> 14; the seed's doc says 13/2, wrongly
        (15, 3, 80, (1, 14)),  # 0.54 -> 1
        (15, 25, 25, (8, 7)),  # 7.5 -> 8 with JS rounding; the doc says 7/8
        (15, 10, 0, (14, 1)),  # acte minimum enforced
        (15, 0, 10, (1, 14)),  # index minimum enforced
        (4, 3, 1, (3, 1)),
        (5, 1, 1, (3, 2)),  # 2.5 -> 3; Python's round() would give 2
        (2, 9, 1, (1, 1)),  # a pool of 2 is always 1/1
        (1, 5, 0, (0, 1)),  # minimums infeasible: the acte rule wins
    ],
)
def test_seed_split_matches_the_worked_examples(pool, index_docs, acte_docs, expected):
    assert seed_split(pool, index_docs, acte_docs, min_index=1, min_acte=1) == Split(*expected)


def test_js_round_sends_halves_up():
    assert [js_round(x) for x in (0.5, 1.5, 2.5, 2.4999, -0.5)] == [1, 2, 3, 2, 0]


def test_a_minimum_larger_than_the_pool_never_goes_negative():
    assert seed_split(1, 0, 5, min_index=0, min_acte=3) == Split(0, 1)


def test_allocation_shrinks_to_the_capacity_left_after_registre_runs():
    budget = ocr_capacity(Budget(6.4, 12.8), registre_runs=1, costs=DEFAULT_COSTS)
    assert budget == Budget(pytest.approx(3.4), pytest.approx(11.8))
    # 4 workers split 3/1 would need 5.5 vCPU; 3 split 2/1 needs 4; 2 split 1/1 needs 2.5
    assert allocate(4, 30, 10, capacity=budget) == Split(1, 1)


def test_an_index_slot_costs_more_than_an_acte_slot():
    # 3.5 vCPU hold 1 index + 2 acte, not 2 index + 1 acte: each split is costed as it is
    assert allocate(3, 0, 9, capacity=Budget(3.5, 16)) == Split(1, 2)
    assert allocate(3, 9, 0, capacity=Budget(3.5, 16)) == Split(1, 1)


def test_registre_runs_beyond_the_budget_leave_nothing():
    assert ocr_capacity(Budget(6.4, 12.8), 3, DEFAULT_COSTS) == Budget(0, pytest.approx(9.8))
    assert allocate(4, 1, 1, capacity=Budget(0, 9.8)) == Split(0, 0)


sizes = st.integers(min_value=0, max_value=60)
depths = st.integers(min_value=0, max_value=10_000)
minimums = st.integers(min_value=0, max_value=5)
budgets = st.builds(
    Budget,
    st.floats(min_value=0, max_value=64, allow_nan=False),
    st.floats(min_value=0, max_value=128, allow_nan=False),
)
costs = st.builds(
    lambda i_cpu, i_ram, a_cpu, a_ram: {
        WorkerKind.REGISTRE: Cost(3, 1),
        WorkerKind.INDEX_OCR: Cost(i_cpu, i_ram),
        WorkerKind.ACTE_OCR: Cost(a_cpu, a_ram),
    },
    *[st.floats(min_value=0.1, max_value=4, allow_nan=False)] * 4,
)


@given(sizes, depths, depths, minimums, minimums, budgets, costs)
def test_allocation_invariants(pool, index_docs, acte_docs, min_index, min_acte, budget, table):
    split = allocate(
        pool,
        index_docs,
        acte_docs,
        min_index=min_index,
        min_acte=min_acte,
        capacity=budget,
        costs=table,
    )
    assert split.index >= 0 and split.acte >= 0
    assert split.total <= pool
    assert split.cost(table).fits(budget)
    minimums_cost = Split(min_index, min_acte).cost(table)
    if min_index + min_acte <= pool and minimums_cost.fits(budget):
        assert split.index >= min_index
        assert split.acte >= min_acte


@given(sizes, depths, depths, minimums, minimums)
def test_without_a_budget_the_whole_pool_is_split(pool, index_docs, acte_docs, min_i, min_a):
    split = allocate(pool, index_docs, acte_docs, min_index=min_i, min_acte=min_a)
    assert split.total == pool
    if min_i + min_a <= pool:
        assert split.index >= min_i and split.acte >= min_a


@given(sizes, depths, depths, st.integers(min_value=1, max_value=100), minimums, minimums)
def test_more_index_documents_never_mean_fewer_index_workers(pool, i, a, more, min_i, min_a):
    before = seed_split(pool, i, a, min_index=min_i, min_acte=min_a)
    after = seed_split(pool, i + more, a, min_index=min_i, min_acte=min_a)
    assert after.index >= before.index
