"""When the soak expects each quantity to level off (bench/soak.py: bounds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def soak(bench_module):
    return bench_module("soak")


def test_a_two_hour_run_keeps_rebalance_runs_10_minutes_events_an_hour(soak, monkeypatch):
    for name in ("DOCUMENT_RUN_RETENTION_DAYS", "REBALANCE_RUN_RETENTION_HOURS",
                 "EVENT_RETENTION_HOURS", "WORKER_RECYCLE_RUNS", soak.VACUUM_LOOP):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    env = soak.retentions(120)
    assert float(env["REBALANCE_RUN_RETENTION_HOURS"]) * 60 == pytest.approx(10, abs=0.01)
    assert float(env["EVENT_RETENTION_HOURS"]) == pytest.approx(1)
    assert float(env["DOCUMENT_RUN_RETENTION_DAYS"]) * 86400 > 3600  # Prefect's minimum
    assert env[soak.VACUUM_LOOP] == "180"
    assert env["WORKER_RECYCLE_RUNS"] == "30"  # recycled within the run
    monkeypatch.setenv("EVENT_RETENTION_HOURS", "0.5")  # the operator's choice wins
    assert soak.retentions(120)["EVENT_RETENTION_HOURS"] == "0.5"


def test_runs_and_events_level_off_after_their_retention_and_one_clean_up(soak):
    env = {"DOCUMENT_RUN_RETENTION_DAYS": "0.0417", "REBALANCE_RUN_RETENTION_HOURS": "0.1667",
           "EVENT_RETENTION_HOURS": "1", soak.VACUUM_LOOP: "180"}  # fmt: skip
    found = soak.bounds(env, sample_s=120)
    runs_s = 0.0417 * 86400 + 180 + 120
    assert found["flow_run rows"].settles_after_s == pytest.approx(runs_s)
    assert found["log rows"].settles_after_s == pytest.approx(runs_s)
    assert found["events rows"].settles_after_s == pytest.approx(3600 + 180 + 120)
    assert found["prefect db MB"].settles_after_s == pytest.approx(max(runs_s, 3600 + 180 + 120))
    assert found["storage MB"].settles_after_s is None
    assert found["redis used MB"].settles_after_s == 0
