from __future__ import annotations

from dataclasses import replace

import pytest

from flows.rebalance import fingerprint, report_refresh_s
from tasks.control.allocation import Split
from tasks.control.dispatch import Picture
from tasks.control.planning import Limits
from tasks.coordination.capacity.budget import Budget, Cost
from tasks.coordination.capacity.leases import CapacityStatus


def picture(**changes: object) -> Picture:
    state = CapacityStatus(
        budget=Budget(8, 16), allocated=Cost(1, 0.5), hosts={"a": Budget(8, 16)},
        runs={"a": {"registre": 0, "ocr": 1}}, notes={}, workers=[{"lease": "x"}],
    )  # fmt: skip
    seen = Picture(
        capacity=state,
        waiting={"registre": 0, "ocr-index": 0, "ocr-acte": 3},
        waiting_by_env={"prod": {"registre": 0, "ocr-index": 0, "ocr-acte": 3}},
        limits=Limits(1, 2, Split(1, 1)),
        active={"ocr-acte": 1},
    )
    return replace(seen, **changes)


def test_a_report_is_due_when_what_it_says_changed_not_when_counts_move():
    """Runs in progress, allocated capacity and how many rows wait move at every tick."""
    base = fingerprint(picture(), [])
    busier = picture(
        capacity=replace(picture().capacity, allocated=Cost(2, 1), runs={"a": {"ocr": 2}}),
        waiting_by_env={"prod": {"registre": 0, "ocr-index": 0, "ocr-acte": 9}},
        active={"ocr-acte": 2},
    )
    assert fingerprint(busier, []) == base


@pytest.mark.parametrize(
    "changed",
    [
        {"limits": Limits(1, 2, Split(2, 0))},  # the split
        {"limits": Limits(0, 2, Split(1, 1))},  # a pool limit
        {"waiting_by_env": {"prod": {"registre": 1, "ocr-index": 0, "ocr-acte": 3}}},
        {"created": ["ocr-prod-acte-123"]},
    ],
)
def test_limits_split_waiting_queues_and_created_runs_are_changes(changed):
    assert fingerprint(picture(**changed), []) != fingerprint(picture(), [])


def test_hosts_notes_and_rows_taken_back_are_changes():
    base = fingerprint(picture(), [])
    state = picture().capacity
    for other in (
        replace(state, hosts={"a": Budget(8, 16), "b": Budget(4, 8)}),
        replace(state, hosts={"a": Budget(6, 16)}),
        replace(state, notes={"a": ["Insufficient server capacity: ..."]}),
    ):
        assert fingerprint(picture(capacity=other), []) != base
    assert fingerprint(picture(), ["row 1 (lease expired)"]) != base


def test_an_unchanged_report_is_written_again_before_the_clean_up_takes_the_last():
    assert report_refresh_s(24) == 3600
    assert report_refresh_s(0.5) == 900  # a soak benchmark's half hour: every 15 minutes
