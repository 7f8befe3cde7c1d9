from __future__ import annotations

import os

from deployments.recycle import RecyclePolicy, rss_mb
from tasks.settings import load_settings


def test_a_worker_is_due_after_its_runs_or_above_its_memory_whichever_first() -> None:
    policy = RecyclePolicy(runs=200, rss_mb=300)
    assert policy.reason(199, 299.9) is None
    assert policy.reason(200, 120) == "200 runs started (WORKER_RECYCLE_RUNS=200)"
    assert policy.reason(12, 301.4) == "301 MB resident (WORKER_RECYCLE_MB=300)"


def test_zero_turns_either_off() -> None:
    assert RecyclePolicy(runs=0, rss_mb=300).reason(10_000, 299) is None
    assert RecyclePolicy(runs=200, rss_mb=0).reason(199, 10_000) is None
    assert RecyclePolicy(runs=0, rss_mb=0).reason(10_000, 10_000) is None


def test_the_policy_comes_from_the_settings() -> None:
    settings = load_settings(_env_file=None, worker_recycle_runs=5, worker_recycle_mb=0)
    assert RecyclePolicy.of(settings) == RecyclePolicy(runs=5, rss_mb=0)


def test_resident_memory_of_a_live_process_and_of_a_gone_one() -> None:
    assert 5 < rss_mb(os.getpid()) < 4096
    assert rss_mb(2**22 + 1) == 0.0  # above pid_max's default: no such process
