from __future__ import annotations

import itertools

import pytest

from tasks.control.allocation import Split
from tasks.control.planning import (
    NO_LIMITS,
    CapacityCheck,
    InsufficientCapacity,
    Limits,
    check_capacity,
    free_slots,
    host_offer,
    idempotency_key,
    plan_limits,
    run_name,
    runs_to_create,
)
from tasks.control.pools import OCR_ACTE, OCR_INDEX, OCR_POOL, REGISTRE, REGISTRE_POOL
from tasks.coordination.capacity.budget import DEFAULT_COSTS, Budget
from tasks.failures import ConfigError
from tasks.queue.jobs import Claimable

SEED_HOST = Budget(6.4, 12.8)  # 8 vCPU / 16 GB with 20 % kept back


def offer(budget=SEED_HOST, **kw):
    values = {"worker_count": 1, "ocr_pool_size": 4, "min_index": 1, "min_acte": 1, **kw}
    return host_offer(budget, DEFAULT_COSTS, **values)


def test_a_host_offers_its_counts_when_they_fit():
    assert offer(Budget(20, 20), worker_count=2, ocr_pool_size=4).as_runs() == {
        REGISTRE_POOL: 2,
        OCR_POOL: 4,
    }


def test_registre_runs_leave_room_for_the_ocr_minimums():
    # 6.4 vCPU: the minimums take 2.5, so one registre run (3) fits, not two
    result = offer(worker_count=3)
    assert result.registre == 1
    # what is left after it (3.4 vCPU) holds two OCR runs of the even mix (1.25 each)
    assert result.ocr == 2


def test_a_host_that_cannot_hold_the_ocr_minimums_is_refused_with_the_numbers():
    with pytest.raises(
        InsufficientCapacity,
        match=r"Insufficient server capacity: .*CPU needs 2.5"
        r" vCPU, 1.6 vCPU available",
    ):
        offer(Budget(1.6, 4))


def test_a_kind_that_does_not_fit_once_gets_0_with_a_message():
    result = offer(Budget(4, 8), worker_count=1)  # 4 - 2.5 leaves 1.5 vCPU, a run needs 3
    assert result.registre == 0 and result.ocr >= 2
    assert result.notes == (
        "Insufficient server capacity: one registre run beside the OCR"
        " minimums: CPU needs 3 vCPU, 1.5 vCPU available",
    )


def test_a_registre_only_host_uses_its_whole_budget():
    result = offer(Budget(6.4, 12.8), worker_count=3, pools=(REGISTRE_POOL,))
    assert (result.registre, result.ocr) == (2, 0)


def test_limits_are_the_sums_over_live_hosts_and_zero_without_hosts():
    budgets = {"a": SEED_HOST, "b": Budget(20, 20)}
    offers = {"a": {REGISTRE_POOL: 1, OCR_POOL: 2}, "b": {REGISTRE_POOL: 2, OCR_POOL: 4}}
    limits = plan_limits(
        budgets, offers, DEFAULT_COSTS, index_waiting=10, acte_waiting=0, min_index=1, min_acte=1
    )
    assert (limits.registre, limits.ocr) == (3, 6)
    assert limits.split == Split(5, 1)  # proportional, the acte minimum kept
    assert (
        plan_limits({}, {}, DEFAULT_COSTS, index_waiting=5, acte_waiting=5, min_index=1, min_acte=1)
        == NO_LIMITS
    )


def test_the_split_stays_inside_what_the_registre_runs_leave():
    limits = plan_limits(
        {"a": Budget(8, 16)},
        {"a": {REGISTRE_POOL: 1, OCR_POOL: 8}},
        DEFAULT_COSTS,
        index_waiting=100,
        acte_waiting=0,
        min_index=1,
        min_acte=1,
    )
    # 8 - 3 leaves 5 vCPU: 2 index (3) + 1 acte (1) = 4 fits, 3 index + 1 acte = 5.5 does not
    assert limits.split.cost(DEFAULT_COSTS).cpu <= 5
    assert limits.split.acte >= 1


def test_free_slots_respect_each_queue_and_the_ocr_pool():
    limits = Limits(2, 3, Split(2, 2))
    free = free_slots(limits, {REGISTRE: 1, OCR_INDEX: 1, OCR_ACTE: 1})
    assert free == {REGISTRE: 1, OCR_INDEX: 1, OCR_ACTE: 0}  # the pool's 3rd slot went to index
    assert free_slots(limits, {REGISTRE: 5})[REGISTRE] == 0


def rows(n):
    return [Claimable("prod", f"id-{i}", "index", f"{i} 000", "v1") for i in range(n)]


def test_runs_are_created_in_claim_order_only_for_rows_without_a_run():
    chosen = runs_to_create(rows(5), busy={("prod", "id-0"), ("prod", "id-2")}, free=2)
    assert [r.id for r in chosen] == ["id-1", "id-3"]
    assert runs_to_create(rows(5), set(), 0) == []


def test_a_run_is_named_after_its_document_and_keyed_on_the_rows_version():
    row = Claimable("staging", "abc", "index", " 2 274  178 ", "2026-12-01 10:00:00+00")
    assert run_name(REGISTRE, row) == "registre-staging-index-2 274 178"
    assert run_name(OCR_INDEX, row._replace(number="9" * 5000)) == "ocr-staging-index-" + "9" * 60
    assert idempotency_key(REGISTRE, row) != idempotency_key(REGISTRE, row._replace(version="v2"))
    assert idempotency_key(REGISTRE, row) == idempotency_key(REGISTRE, row)


# --- the start-up check (`registre config check`, `up`, `worker`)


def check(budget=SEED_HOST, **kw):
    values = {"worker_count": 1, "ocr_pool_size": 2, "min_index": 1, "min_acte": 1, **kw}
    return check_capacity(budget, DEFAULT_COSTS, **values)


def test_counts_that_fit_pass_unchanged_without_a_word():
    assert check(worker_count=1, ocr_pool_size=2) == CapacityCheck(1, 2, ())
    assert check(Budget(20, 20), worker_count=2, ocr_pool_size=4, overcommit="reduce") == (
        CapacityCheck(2, 4, ())
    )


def test_registre_runs_that_crowd_out_the_ocr_minimums_are_refused_with_the_numbers():
    # the incident: WORKER_COUNT=3 on the seed's host, 3 x 3 vCPU + the minimums' 2.5 > 6.4
    with pytest.raises(InsufficientCapacity) as info:
        check(worker_count=3, ocr_pool_size=4)
    assert str(info.value) == (
        "Insufficient server capacity: WORKER_COUNT=3 registre runs beside the OCR minimums"
        " (1 index + 1 acte): CPU needs 11.5 vCPU, 6.4 vCPU available;"
        " 3 registre runs + OCR_WORKER_POOL_SIZE=4 OCR runs: CPU needs 14 vCPU, 6.4 vCPU"
        " available. Lower the counts or the COST_* table, or set SERVER_MAX_CPU /"
        " SERVER_MAX_RAM to the host's real size if it is larger, or set"
        " CAPACITY_OVERCOMMIT=reduce to run 1 registre run + 2 OCR runs"
    )


def test_an_ocr_pool_too_large_is_refused_naming_ram_when_ram_is_short():
    with pytest.raises(InsufficientCapacity, match=r"OCR_WORKER_POOL_SIZE=4 OCR runs: RAM needs"
                       r" 3.5 GB, 3 GB available"):  # fmt: skip
        check(Budget(40, 3), worker_count=1, ocr_pool_size=4)


def test_reduce_cuts_registre_first_so_the_ocr_minimums_fit_and_says_to_what():
    result = check(worker_count=3, ocr_pool_size=4, overcommit="reduce")
    assert (result.worker_count, result.ocr_pool_size) == (1, 2)
    assert result.warnings == (
        "Insufficient server capacity: WORKER_COUNT=3 registre runs beside the OCR minimums"
        " (1 index + 1 acte): CPU needs 11.5 vCPU, 6.4 vCPU available;"
        " CAPACITY_OVERCOMMIT=reduce: WORKER_COUNT reduced from 3 to 1",
        "Insufficient server capacity: 1 registre run + OCR_WORKER_POOL_SIZE=4 OCR runs: CPU"
        " needs 8 vCPU, 6.4 vCPU available; CAPACITY_OVERCOMMIT=reduce: OCR_WORKER_POOL_SIZE"
        " reduced from 4 to 2",
    )


@pytest.mark.parametrize("overcommit", ["refuse", "reduce"])
def test_ocr_minimums_that_do_not_fit_are_refused_in_both_modes(overcommit):
    # this 2-core machine: 1.6 vCPU after the reserve, the minimums need 2.5
    with pytest.raises(InsufficientCapacity, match=r"^Insufficient server capacity: the OCR"
                       r" minimums \(1 index \+ 1 acte runs\): CPU needs 2.5 vCPU, 1.6 vCPU"
                       r" available\. "):  # fmt: skip
        check(Budget(1.6, 18.8), worker_count=3, overcommit=overcommit)


def test_a_refusal_offers_reduce_only_when_reduce_would_run_every_stage():
    with pytest.raises(InsufficientCapacity) as info:
        check(Budget(4, 8), worker_count=1)  # not one registre run fits beside the minimums
    assert str(info.value).startswith(
        "Insufficient server capacity: WORKER_COUNT=1 registre run beside the OCR minimums"
        " (1 index + 1 acte): CPU needs 5.5 vCPU, 4 vCPU available. Lower the counts"
    )
    assert "CAPACITY_OVERCOMMIT" not in str(info.value)


def test_reduce_never_starves_a_stage_to_zero_runs():
    # 4 vCPU: the minimums take 2.5, a registre run (3) does not fit beside them
    with pytest.raises(InsufficientCapacity, match="would leave WORKER_COUNT=0 and its documents"):
        check(Budget(4, 8), worker_count=1, overcommit="reduce")
    # without OCR minimums, an OCR pool that gets no run at all is refused too
    with pytest.raises(InsufficientCapacity, match="would leave OCR_WORKER_POOL_SIZE=0"):
        check(Budget(4, 8), worker_count=1, ocr_pool_size=2, min_index=0, min_acte=0,
              overcommit="reduce")  # fmt: skip


@pytest.mark.parametrize("overcommit", ["refuse", "reduce"])
def test_an_ocr_pool_smaller_than_its_minimums_is_refused(overcommit):
    with pytest.raises(ConfigError, match="OCR_WORKER_POOL_SIZE=1 cannot hold"
                       " OCR_MIN_INDEX_WORKERS=1 \\+ OCR_MIN_ACTE_WORKERS=1"):  # fmt: skip
        check(Budget(40, 40), ocr_pool_size=1, overcommit=overcommit)


def test_a_host_checks_only_the_pools_it_runs():
    assert check(worker_count=2, ocr_pool_size=0, pools=(REGISTRE_POOL,)) == CapacityCheck(2, 0)
    with pytest.raises(InsufficientCapacity, match=r"WORKER_COUNT=3 registre runs: CPU needs 9"):
        check(worker_count=3, pools=(REGISTRE_POOL,))
    assert check(Budget(5, 5), worker_count=9, ocr_pool_size=4, pools=(OCR_POOL,)) == (
        CapacityCheck(9, 4)
    )


@pytest.mark.parametrize("overcommit", ["refuse", "reduce"])
def test_the_worker_runs_exactly_what_the_check_let_through(overcommit):
    """host_offer (what `registre worker` gives its Prefect workers) never cuts counts the
    check passed: the check is the only place where counts change, and it says so."""
    passed, reduced = 0, 0
    grid = itertools.product(
        (2.5, 4, 5.5, 6.4, 8, 9.6, 12.8, 19.2), (2, 4, 12.8), range(4), range(2, 7),
        ((REGISTRE_POOL, OCR_POOL), (REGISTRE_POOL,), (OCR_POOL,)),
    )  # fmt: skip
    for cpu, ram, w, p, pools in grid:
        budget = Budget(cpu, ram)
        try:
            checked = check(budget, worker_count=w, ocr_pool_size=p, pools=pools,
                            overcommit=overcommit)  # fmt: skip
        except InsufficientCapacity:
            continue
        passed += 1
        reduced += bool(checked.warnings)
        result = offer(budget, worker_count=checked.worker_count,
                       ocr_pool_size=checked.ocr_pool_size, pools=pools)  # fmt: skip
        expected = {
            REGISTRE_POOL: checked.worker_count if REGISTRE_POOL in pools else 0,
            OCR_POOL: checked.ocr_pool_size if OCR_POOL in pools else 0,
        }
        assert (result.as_runs(), result.notes) == (expected, ()), (cpu, ram, w, p, pools)
    assert passed > 500 and (reduced > 100 if overcommit == "reduce" else reduced == 0)


@pytest.mark.parametrize("stored", ["2 274 178", "2\u00a0274\u202f178", " 2\t274  178\n"])
def test_a_run_name_keeps_the_numbers_spaces_so_the_ui_search_finds_it_as_typed(stored):
    """Copied from the registry's French pages, a number holds non-breaking spaces; the name
    has plain ones, which is what an operator types in the UI's search box."""
    row = Claimable("prod", "abc", "index", stored, "v1")
    assert run_name(REGISTRE, row) == "registre-prod-index-2 274 178"


def test_a_run_name_stays_bounded_whatever_the_row_holds():
    row = Claimable("prod", "abc", "x" * 5000, "9" * 5000, "v1")
    assert run_name(REGISTRE, row) == f"registre-prod-{'x' * 20}-{'9' * 60}"
    assert run_name(REGISTRE, row._replace(source="", number=" ")) == "registre-prod-?-?"
