from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tasks.coordination.ratelimit import (
    ARRIVAL_SKEW_MS,
    WINDOW_MS,
    GeminiLimiter,
    Permit,
    RateLimiterUnavailable,
    RateLimitTimeout,
)
from tasks.coordination.redis_keys import RedisKeys
from tasks.services import gemini_limiter
from tasks.settings import load_settings

from .conftest import TEST_REDIS_URL

fork = multiprocessing.get_context("fork")


@pytest.fixture
def limiter(redis_client, redis_prefix) -> GeminiLimiter:
    """Gemini's own window, without the arrival skew, so that the waits are round figures."""
    return GeminiLimiter(
        redis_client, max_rpm=5, max_tpm=1000, prefix=redis_prefix, window_ms=WINDOW_MS
    )


def _now_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1_000_000 + micros


def _seed(client: redis.Redis, prefix: str, entries: dict[str, tuple[int, int]]) -> None:
    """Write log entries {request id: (admitted at µs, tokens)} and their total directly."""
    keys = RedisKeys(prefix)
    client.zadd(keys.gemini_log, {f"{rid}:{n}": at for rid, (at, n) in entries.items()})
    client.set(keys.gemini_tpm, sum(n for _, n in entries.values()))


def test_defaults_are_the_seed_limits(redis_client):
    limiter = gemini_limiter(load_settings(), redis_client)
    assert (limiter.max_rpm, limiter.max_tpm) == (1600, 6_400_000)
    tuned = load_settings(gemini_max_rpm=10, gemini_max_tpm=99)
    assert (gemini_limiter(tuned, redis_client).max_rpm, tuned.gemini_max_tpm) == (
        10,
        99,
    )


def test_admits_up_to_the_request_limit_then_says_how_long_to_wait(limiter, redis_client, keys):
    permits = [limiter.acquire(10) for _ in range(5)]
    wait_s = limiter.try_acquire(10)
    assert isinstance(wait_s, float) and 59 < wait_s <= 60
    assert redis_client.get(keys.gemini_rpm) == b"5"
    assert redis_client.get(keys.gemini_tpm) == b"50"
    assert len({p.request_id for p in permits}) == 5


def test_the_wait_is_until_the_oldest_entry_leaves_the_trailing_window(
    limiter, redis_client, redis_prefix
):
    now = _now_us(redis_client)
    _seed(redis_client, redis_prefix, {f"r{i}": (now - 59_700_000 + i, 1) for i in range(5)})
    wait_s = limiter.try_acquire(1)
    assert isinstance(wait_s, float) and 0.2 < wait_s <= 0.3


def test_entries_older_than_the_window_stop_counting(limiter, redis_client, redis_prefix, keys):
    now = _now_us(redis_client)
    _seed(redis_client, redis_prefix, {"old": (now - 60_000_001, 900), "new": (now - 1000, 50)})
    permit = limiter.acquire(100, max_wait_s=0)
    assert redis_client.zrange(keys.gemini_log, 0, -1) == [
        b"new:50",
        f"{permit.request_id}:100".encode(),
    ]
    assert redis_client.get(keys.gemini_tpm) == b"150"


def test_the_token_wait_walks_until_enough_tokens_leave(limiter, redis_client, redis_prefix):
    now = _now_us(redis_client)
    _seed(
        redis_client,
        redis_prefix,
        {
            "a": (now - 59_900_000, 600),  # leaves in 0.1 s
            "b": (now - 59_500_000, 400),  # leaves in 0.5 s
        },
    )
    small, large = limiter.try_acquire(500), limiter.try_acquire(700)
    assert 0.05 < small <= 0.1
    assert 0.45 < large <= 0.5


def test_an_estimate_above_the_token_limit_is_refused_outright(limiter):
    with pytest.raises(ValueError, match="TPM limit"):
        limiter.acquire(1001)


def test_acquire_gives_up_after_its_maximum_wait(limiter):
    for _ in range(5):
        limiter.acquire(1)
    with pytest.raises(RateLimitTimeout) as timeout:
        limiter.acquire(1, max_wait_s=0.2)
    assert 59 < timeout.value.retry_after_s <= 60


def test_reconcile_moves_tpm_both_ways(limiter, redis_client, keys):
    over, under = limiter.acquire(300), limiter.acquire(300)
    assert limiter.reconcile(over, 800) == 500
    assert redis_client.get(keys.gemini_tpm) == b"1100"
    assert isinstance(limiter.try_acquire(1), float)  # 1100 > 1000 until a minute has passed
    assert limiter.reconcile(under, 0) == -300
    assert redis_client.get(keys.gemini_tpm) == b"800"
    assert redis_client.zscore(keys.gemini_log, f"{over.request_id}:800")
    assert redis_client.zscore(keys.gemini_log, f"{under.request_id}:0")
    limiter.acquire(200, max_wait_s=0)


def test_reconcile_after_the_entry_left_the_window_changes_nothing(limiter, redis_client, keys):
    permit = limiter.acquire(300)
    redis_client.zadd(keys.gemini_log, {f"{permit.request_id}:300": _now_us(redis_client) - 61e6})
    limiter.try_acquire(1)  # trims the old entry
    assert limiter.reconcile(permit, 900) == 0
    assert redis_client.get(keys.gemini_tpm) == b"1"


def test_a_pause_blocks_everyone_and_a_shorter_one_does_not_cut_it(
    limiter, redis_client, redis_prefix
):
    other = GeminiLimiter(redis_client, max_rpm=5, max_tpm=1000, prefix=redis_prefix)
    assert other.pause_all(30) == 30
    assert 29 < limiter.pause_all(1) <= 30
    wait_s = limiter.try_acquire(1)
    assert isinstance(wait_s, float) and 29 < wait_s <= 30
    assert 29 < limiter.usage().paused_for_s <= 30


def test_an_unreachable_redis_fails_closed():
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.05, retry=Retry(NoBackoff(), 0)
    )
    limiter = GeminiLimiter(client, prefix="unused:")
    with pytest.raises(RateLimiterUnavailable):
        limiter.acquire(10, max_wait_s=0.5)


def max_in_trailing_window(stamps: list[tuple[int, int]], window_us: int) -> tuple[int, int]:
    """Most requests and tokens in any trailing window, from (admitted at µs, tokens) pairs.

    A window's maximum is reached at an admission, so checking at each one is exhaustive.
    """
    stamps = sorted(stamps)
    most_requests = most_tokens = tokens = 0
    j = 0
    for i, (at, n) in enumerate(stamps):
        tokens += n
        while stamps[j][0] <= at - window_us:
            tokens -= stamps[j][1]
            j += 1
        most_requests = max(most_requests, i - j + 1)
        most_tokens = max(most_tokens, tokens)
    return most_requests, most_tokens


def mean_fill(stamps: list[tuple[int, int]], window_us: int, start: int, end: int, weight) -> float:
    """Mean usage of the trailing window, sampled every 10 ms from `start` to `end`."""
    points = range(start, end, 10_000)
    used = [sum(weight(n) for at, n in stamps if t - window_us < at <= t) for t in points]
    return sum(used) / len(used)


def _hammer(prefix, rpm, tpm, window_ms, tokens, deadline_us, threads, results) -> None:
    limiter = GeminiLimiter(
        redis.Redis.from_url(TEST_REDIS_URL),
        max_rpm=rpm,
        max_tpm=tpm,
        prefix=prefix,
        window_ms=window_ms,
    )
    stamps: list[tuple[int, int]] = []

    def demand(k: int) -> None:
        while True:
            n = tokens[(k + len(stamps)) % len(tokens)]
            permit = limiter.acquire(n, max_wait_s=30)
            stamps.append((permit.admitted_at_us, n))
            if permit.admitted_at_us >= deadline_us:
                return

    pool = [threading.Thread(target=demand, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put(stamps)


def _run_demand(redis_client, prefix, *, rpm, tpm, window_ms, tokens, run_s, procs=4, threads=8):
    start_us = _now_us(redis_client)
    deadline_us = start_us + int(run_s * 1_000_000)
    results = fork.Queue()
    workers = [
        fork.Process(
            target=_hammer,
            args=(prefix, rpm, tpm, window_ms, tokens, deadline_us, threads, results),
        )
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    stamps = [s for _ in workers for s in results.get(timeout=run_s + 60)]
    for w in workers:
        w.join(timeout=10)
    return stamps, deadline_us


def test_four_processes_never_exceed_the_request_limit_and_use_it(redis_client, redis_prefix):
    """4 processes x 8 threads against 100 requests per 2 s window, timestamps from Redis."""
    window_us = 2_000_000
    stamps, deadline_us = _run_demand(
        redis_client, redis_prefix, rpm=100, tpm=10**9, window_ms=2000, tokens=[10], run_s=6
    )
    most_requests, _ = max_in_trailing_window(stamps, window_us)
    assert most_requests == 100
    first = min(at for at, _ in stamps)
    fill = mean_fill(stamps, window_us, first + window_us, deadline_us, lambda n: 1)
    assert fill >= 95, f"mean trailing-window use {fill:.1f} of 100"


@pytest.mark.slow
def test_four_processes_never_exceed_the_token_limit_and_use_it(redis_client, redis_prefix):
    """Tokens bind (40 x 100 per window); requests of uneven size keep the walk honest."""
    window_us = 2_000_000
    stamps, deadline_us = _run_demand(
        redis_client,
        redis_prefix,
        rpm=10_000,
        tpm=4000,
        window_ms=2000,
        tokens=[100, 37, 250, 100, 3],
        run_s=8,
    )
    _, most_tokens = max_in_trailing_window(stamps, window_us)
    assert most_tokens <= 4000
    first = min(at for at, _ in stamps)
    fill = mean_fill(stamps, window_us, first + window_us, deadline_us, lambda n: n)
    assert fill >= 0.95 * 4000, f"mean trailing-window tokens {fill:.0f} of 4000"


def _acquire_until(prefix, until_us, started, results) -> None:
    limiter = GeminiLimiter(
        redis.Redis.from_url(TEST_REDIS_URL),
        max_rpm=10**6,
        max_tpm=10**9,
        prefix=prefix,
        window_ms=1000,
    )
    stamps = []
    while True:
        stamps.append(limiter.acquire(1, max_wait_s=30).admitted_at_us)
        started.set()
        if stamps[-1] >= until_us:
            break
    results.put(stamps)


def test_a_429_pause_stops_every_process(redis_client, redis_prefix):
    until_us = _now_us(redis_client) + 4_000_000
    results = fork.Queue()
    started = [fork.Event() for _ in range(4)]
    procs = [
        fork.Process(target=_acquire_until, args=(redis_prefix, until_us, s, results))
        for s in started
    ]
    for p in procs:
        p.start()
    assert all(s.wait(30) for s in started)
    pauser = GeminiLimiter(redis_client, prefix=redis_prefix, window_ms=1000)
    before = _now_us(redis_client)
    pauser.pause_all(1.0)
    after = _now_us(redis_client)
    per_process = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    for stamps in per_process:
        assert any(at < before for at in stamps)
        assert not [at for at in stamps if after <= at < before + 1_000_000]
        assert any(at >= before + 1_000_000 for at in stamps)


def test_a_total_left_without_its_log_does_not_block(limiter, redis_client, keys):
    """A stale gemini:tpm:current (its log gone) must not count against the budget."""
    redis_client.set(keys.gemini_tpm, 900)
    limiter.acquire(500, max_wait_s=0)
    assert redis_client.get(keys.gemini_tpm) == b"500"


def test_a_window_redis_lost_pauses_everyone_until_a_window_has_passed(redis_client, redis_prefix):
    running = GeminiLimiter(redis_client, max_rpm=5, prefix=redis_prefix, window_ms=1000)
    assert isinstance(running.try_acquire(10), Permit)
    redis_client.delete(*redis_client.keys(f"{redis_prefix}*"))  # Redis restarted empty

    fresh = GeminiLimiter(redis_client, max_rpm=5, prefix=redis_prefix, window_ms=1000)
    assert isinstance(fresh.try_acquire(10), Permit)  # a new process cannot know...
    wait_s = running.try_acquire(10)  # ...one that knew the old window does, and pauses all
    assert isinstance(wait_s, float) and 0.5 < wait_s <= 1.0
    assert isinstance(fresh.try_acquire(10), float)
    time.sleep(wait_s + 0.05)
    assert isinstance(running.try_acquire(10), Permit)
    assert isinstance(running.try_acquire(10), Permit)  # once: the new window is known now


def test_the_default_window_outlasts_geminis_by_the_arrival_skew(redis_client, redis_prefix):
    limiter = GeminiLimiter(redis_client, max_rpm=1, prefix=redis_prefix)
    limiter.acquire(10)
    wait_s = limiter.try_acquire(10)
    assert isinstance(wait_s, float)
    assert (WINDOW_MS + ARRIVAL_SKEW_MS) / 1000 - 1 < wait_s <= (WINDOW_MS + ARRIVAL_SKEW_MS) / 1000
