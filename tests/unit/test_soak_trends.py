"""The soak's judgement (bench/trends.py) on made-up series: what keeps growing fails, what
levels off, saw-tooths or spikes once passes, and what cannot settle within the run is only
reported."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("trends", BENCH / "trends.py")
trends = importlib.util.module_from_spec(spec)
sys.modules["trends"] = trends
spec.loader.exec_module(trends)

MINUTES = [60.0 * m for m in range(0, 121, 2)]  # a 2-hour run sampled every 2 min
WARMUP_S = 24 * 60.0


def series(f) -> list[float]:
    return [f(t / 60) for t in MINUTES]


@pytest.mark.parametrize(
    ("values", "status"),
    [
        # a leak of 60 MB an hour on 300 MB: +10 % between thirds 32 minutes apart
        (series(lambda m: 300 + 1.0 * m), "FAIL"),
        (series(lambda m: 300 + 100 * (1 - math.exp(-m / 10))), "ok"),  # grows, then levels off
        (series(lambda m: 300 + 20 * ((m % 6) / 6)), "ok"),  # a saw-tooth: vacuum every 6 min
        (series(lambda m: 300 + (200 if m == 110 else 0)), "ok"),  # one spike near the end
        (series(lambda m: 300 + (9 if m > 80 else 0)), "ok"),  # a step of 3 %, within tolerance
        (series(lambda m: 300 - 0.5 * m), "ok"),  # shrinking
    ],
)
def test_a_bounded_quantity_fails_only_when_it_keeps_growing(values, status):
    verdict = trends.judge("x", MINUTES, values, trends.Bound(0), WARMUP_S)
    assert verdict.status == status, verdict.text


def test_small_integer_counts_need_more_than_their_noise_floor_to_fail():
    fds = series(lambda m: 40 + (3 if m > 100 else 0))  # +7 %, but 3 descriptors
    assert trends.judge("fds", MINUTES, fds, trends.Bound(0, floor=8), WARMUP_S).status == "ok"
    leak = series(lambda m: 40 + m / 4)  # one descriptor every 4 minutes
    assert trends.judge("fds", MINUTES, leak, trends.Bound(0, floor=8), WARMUP_S).status == "FAIL"


def test_a_quantity_is_judged_only_after_its_retention_can_have_acted():
    """Runs kept an hour: they grow for an hour, then level off; judged from then on."""
    runs = series(lambda m: 4 * min(m, 63))
    judged = trends.judge("runs", MINUTES, runs, trends.Bound(65 * 60.0), WARMUP_S)
    assert judged.status == "ok", judged.text
    never_deleted = series(lambda m: 4 * m)  # the retention did not act
    assert (
        trends.judge("runs", MINUTES, never_deleted, trends.Bound(65 * 60.0), WARMUP_S).status
        == "FAIL"
    )


def test_too_short_a_window_after_the_retention_is_reported_not_judged():
    runs = series(lambda m: 4 * m)
    verdict = trends.judge("runs", MINUTES, runs, trends.Bound(100 * 60.0, "kept 1 h"), WARMUP_S)
    assert verdict.status == "reported"
    assert "100 min" in verdict.text and "kept 1 h" in verdict.text
    unbounded = trends.judge("storage", MINUTES, runs, trends.Bound(None, "by design"), WARMUP_S)
    assert (unbounded.status, unbounded.text) == ("reported", "by design")
    assert unbounded.slope_per_h == pytest.approx(240)


@pytest.mark.parametrize(
    ("rate_per_min", "status"),
    [
        (lambda m: 3.0, "ok"),
        (lambda m: 3.0 if m < 90 else 2.0, "FAIL"),  # a third fewer documents at the end
        (lambda m: 3.0 if m < 90 else 2.85, "ok"),  # 5 % fewer
    ],
)
def test_throughput_fails_when_the_last_quarter_falls_more_than_10_percent(rate_per_min, status):
    done, total = [], 0.0
    for i, t in enumerate(MINUTES):
        total += rate_per_min(t / 60) * (2 if i else 0)
        done.append(total)
    assert trends.throughput(MINUTES, done, WARMUP_S, depth=6)[0] == status


def test_a_short_run_s_throughput_shortfall_within_the_documents_in_flight_is_not_a_fall():
    times = [20.0 * i for i in range(16)]  # 5 minutes
    done = [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 8, 9, 9, 10, 10]
    status, text = trends.throughput(times, done, 60.0, depth=6)
    assert status == "reported", text
