"""The soak's judgement, pure: whether a sampled quantity keeps growing, and whether throughput
fell. No I/O; tests/unit/test_soak_trends.py drives it with made-up series.

A quantity that should be bounded is judged over the samples after it should have levelled off
(the warm-up, or its retention plus the vacuum's loop, whichever is later). It fails when the
mean of the last third of that window is more than `tolerance` above the mean of its middle
third, by more than its noise floor, and the least-squares slope over the window is positive:
a one-off step or a single spike moves one third's mean but not both conditions for long, and a
sawtooth (a vacuum every few minutes) averages out over a third. A window shorter than
MIN_JUDGED_FRACTION of the run, or of fewer than MIN_JUDGED_SAMPLES, is reported, not judged."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from statistics import fmean

MIN_JUDGED_FRACTION = 0.3  # of the sampled span: less cannot tell a plateau from a ramp
MIN_JUDGED_SAMPLES = 6
THROUGHPUT_DROP = 0.10  # the last quarter's documents may be this much below the first's


@dataclass(frozen=True)
class Bound:
    """How a quantity is judged. `settles_after_s`: seconds from the stream's start after which
    it should stay level; None when nothing bounds it within the run (`why` says why)."""

    settles_after_s: float | None
    why: str = ""
    tolerance: float = 0.05  # relative growth, last third vs middle third
    floor: float = 0.0  # absolute growth below which a change is noise (fds, threads, rows)


@dataclass(frozen=True)
class Verdict:
    name: str
    status: str  # "ok", "FAIL", or "reported" (not judged)
    slope_per_h: float
    growth: float  # relative, fitted over the span after the warm-up
    text: str


def slope(times_s: list[float], values: list[float]) -> float:
    """Least-squares slope, per second."""
    if len(times_s) < 2:
        return 0.0
    mean_t, mean_v = fmean(times_s), fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times_s)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times_s, values, strict=True)) / spread


def _thirds(times_s: list[float], values: list[float]) -> tuple[float, float]:
    """Means of the middle and the last third of the window, cut by time."""
    start, end = times_s[0], times_s[-1]
    cut1, cut2 = start + (end - start) / 3, start + 2 * (end - start) / 3
    middle = [v for t, v in zip(times_s, values, strict=True) if cut1 <= t < cut2]
    last = [v for t, v in zip(times_s, values, strict=True) if t >= cut2]
    return fmean(middle or values), fmean(last or values)


def judge(
    name: str, times_s: list[float], values: list[float], bound: Bound, warmup_s: float
) -> Verdict:
    """`times_s` from the stream's start, one value per sample."""
    after = [(t, v) for t, v in zip(times_s, values, strict=True) if t >= warmup_s]
    ts, vs = [t for t, _ in after], [v for _, v in after]
    per_s = slope(ts, vs)
    span_s = (ts[-1] - ts[0]) if ts else 0.0
    scale = abs(fmean(vs)) if vs else 0.0
    growth = per_s * span_s / scale if scale else 0.0
    trend = dict(name=name, slope_per_h=per_s * 3600, growth=growth)
    if bound.settles_after_s is None:
        return Verdict(**trend, status="reported", text=bound.why)
    begin = max(warmup_s, bound.settles_after_s)
    window = [(t, v) for t, v in after if t >= begin]
    run_s = times_s[-1] - times_s[0] if times_s else 0.0
    judged_s = window[-1][0] - window[0][0] if window else 0.0
    if len(window) < MIN_JUDGED_SAMPLES or judged_s < MIN_JUDGED_FRACTION * run_s:
        why = (f"it should level off {bound.settles_after_s / 60:.0f} min into the stream"
               f" ({bound.why}); {judged_s / 60:.0f} min of the run remain after that")  # fmt: skip
        return Verdict(**trend, status="reported", text=why)
    wt, wv = [t for t, _ in window], [v for _, v in window]
    middle, last = _thirds(wt, wv)
    rise = last - middle
    relative = rise / abs(middle) if middle else (float("inf") if rise > 0 else 0.0)
    growing = relative > bound.tolerance and rise > bound.floor and slope(wt, wv) > 0
    text = (
        f"from {begin / 60:.0f} min: last third {last:.4g} vs middle third {middle:.4g}"
        f" ({relative:+.0%}; tolerance {bound.tolerance:.0%}, floor {bound.floor:g})"
    )
    return Verdict(**trend, status="FAIL" if growing else "ok", text=text)


def throughput(
    times_s: list[float], done: list[float], warmup_s: float, depth: int
) -> tuple[str, str]:
    """(status, text): documents finished in the last quarter of the time after the warm-up
    against the first quarter. `depth` is the documents in flight at once: a window's count is
    uncertain by about that much, so a smaller shortfall is not judged a fall."""
    after = [(t, d) for t, d in zip(times_s, done, strict=True) if t >= warmup_s]
    if len(after) < 4:
        return "reported", "too few samples after the warm-up"
    start, end = after[0][0], after[-1][0]
    quarter = (end - start) / 4

    def done_at(t: float) -> float:  # linear between the samples either side
        for (t0, d0), (t1, d1) in itertools.pairwise(after):
            if t0 <= t <= t1:
                return d0 + (d1 - d0) * (t - t0) / (t1 - t0) if t1 > t0 else d1
        return after[-1][1]

    first = done_at(start + quarter) - done_at(start)
    last = done_at(end) - done_at(end - quarter)
    minutes = quarter / 60
    text = (f"first quarter {first / minutes:.2f}/min ({first:.0f} documents), last quarter"
            f" {last / minutes:.2f}/min ({last:.0f})")  # fmt: skip
    if last >= (1 - THROUGHPUT_DROP) * first:
        return "ok", text
    if first - last <= depth:
        return "reported", f"{text}: a shortfall within the {depth} documents in flight"
    return "FAIL", f"{text}: more than {THROUGHPUT_DROP:.0%} lower"
