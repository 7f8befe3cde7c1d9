"""The Gemini limiter against a Redis PING and the `limits` library's sliding-window counter on the
same Redis, in one run:

1. latency of one admitted acquire, single thread (median, p99, ratio to PING);
2. 4 processes x 8 threads of excess demand: most admitted in any trailing window (timestamps
   from Redis's clock for ours) against the limit, and the mean use of the trailing window.

    .venv/bin/python bench/ratelimit.py [--calls 5000] [--window-s 5] [--limit 400] [--run-s 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import redis
from limits import RateLimitItemPerSecond, storage, strategies

from tasks.coordination.ratelimit import GeminiLimiter

fork = multiprocessing.get_context("fork")


def latencies(calls: int, fns: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Interleaved, so drift in the machine's load hits every contender alike."""
    seen: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            began = time.perf_counter()
            fn()
            seen[name].append(time.perf_counter() - began)
    return seen


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.99)]


def window_stats(
    stamps: list[float], window_s: float, start: float, end: float
) -> tuple[int, float]:
    """Most admissions in any trailing window, and the mean count sampled every 10 ms."""
    stamps = sorted(stamps)
    most, j = 0, 0
    for i, at in enumerate(stamps):
        while stamps[j] <= at - window_s:
            j += 1
        most = max(most, i - j + 1)
    counts, lo, hi, t = [], 0, 0, start
    while t < end:
        while hi < len(stamps) and stamps[hi] <= t:
            hi += 1
        while lo < hi and stamps[lo] <= t - window_s:
            lo += 1
        counts.append(hi - lo)
        t += 0.01
    return most, statistics.fmean(counts) if counts else 0.0


def demand(
    kind: str,
    url: str,
    prefix: str,
    limit: int,
    window_s: float,
    deadline: float,
    threads: int,
    results,
) -> None:
    client = redis.Redis.from_url(url)
    stamps: list[float] = []
    if kind == "ours":
        limiter = GeminiLimiter(
            client, max_rpm=limit, max_tpm=10**12, prefix=prefix, window_ms=int(window_s * 1000)
        )

        def take() -> float:
            return limiter.acquire(1, max_wait_s=60).admitted_at_us / 1e6
    else:
        counter = strategies.SlidingWindowCounterRateLimiter(
            storage.RedisStorage(url, key_prefix=prefix + "limits")
        )
        item = RateLimitItemPerSecond(limit, int(window_s))

        def take() -> float:
            while not counter.hit(item, "gemini"):
                time.sleep(0.005)  # limits has no blocking acquire: poll
            return time.time()

    def loop() -> None:
        while True:
            at = take()
            stamps.append(at)
            if at >= deadline:
                return

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put(stamps)


def contention(kind: str, url: str, prefix: str, args: argparse.Namespace) -> tuple[int, float]:
    seconds, micros = redis.Redis.from_url(url).time()
    deadline = seconds + micros / 1e6 + args.run_s
    results = fork.Queue()
    procs = [
        fork.Process(
            target=demand, args=(kind, url, prefix, args.limit, args.window_s, deadline, 8, results)
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    stamps = [at for _ in procs for at in results.get(timeout=args.run_s + 120)]
    for p in procs:
        p.join()
    first = min(stamps)
    return window_stats(stamps, args.window_s, first + args.window_s, deadline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--window-s", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=400, help="requests per window")
    parser.add_argument("--run-s", type=float, default=15.0)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    try:
        ours = GeminiLimiter(client, max_rpm=10**9, max_tpm=10**12, prefix=prefix + "lat:")
        counter = strategies.SlidingWindowCounterRateLimiter(
            storage.RedisStorage(args.redis_url, key_prefix=prefix + "lat:limits")
        )
        item = RateLimitItemPerSecond(10**9, 60)
        seen = latencies(
            args.calls,
            {
                "redis PING": client.ping,
                "ours acquire": lambda: ours.acquire(15_000),
                "limits sliding-window-counter hit": lambda: counter.hit(item, "gemini"),
            },
        )
        ping = statistics.median(seen["redis PING"])
        print(f"1. one admitted call, single thread, {args.calls} calls each")
        print(f"   {'':36} {'median µs':>10} {'p99 µs':>9} {'median / PING':>14}")
        for name, xs in seen.items():
            med = statistics.median(xs)
            print(f"   {name:36} {med * 1e6:10.0f} {p99(xs) * 1e6:9.0f} {med / ping:14.2f}")
        ratio = statistics.median(seen["ours acquire"]) / ping
        verdict = "met" if ratio <= 2 else "MISSED"
        print(f"   target median acquire <= 2x PING: {verdict} ({ratio:.2f}x)")
        print(
            f"   ours / limits (median): "
            f"{ratio / (statistics.median(seen['limits sliding-window-counter hit']) / ping):.2f}"
        )

        print(
            f"\n2. 4 processes x 8 threads, limit {args.limit} per {args.window_s:g} s, "
            f"{args.run_s:g} s of excess demand"
        )
        print(f"   {'':36} {'most in a window':>17} {'limit':>6} {'mean use':>9}")
        for kind, label in (
            ("ours", "ours (Redis TIME stamps)"),
            ("limits", "limits sliding-window-counter"),
        ):
            most, mean = contention(kind, args.redis_url, f"{prefix}{kind}:", args)
            print(f"   {label:36} {most:17d} {args.limit:6d} {100 * mean / args.limit:8.1f}%")
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        keys += list(client.scan_iter(match="LIMITS:" + prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()
