from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from google import genai
from google.genai import types

from tasks.coordination import ratelimit
from tasks.gemini.client import make_client
from tasks.gemini.generate import GenerateResult, RateLimiter, RetryPolicy, generate

API_KEY = "test-gemini-key-not-secret"  # the key tests/conftest.py starts it with
MODEL = "gemini-2.0-flash"
FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05, max_wait_s=10)


@pytest.fixture
def base_url(gemini_api: str) -> str:
    """The session's stand-in (tests/conftest.py), with fresh counters, no faults, no files."""
    return gemini_api


@pytest.fixture
def client(base_url: str) -> genai.Client:
    return make_client(API_KEY, base_url, timeout_s=10)


@pytest.fixture
def limiter() -> InProcessLimiter:
    return InProcessLimiter()


def set_faults(base_url: str, **faults: object) -> None:
    httpx.post(f"{base_url}/_sandbox/faults", json=faults).raise_for_status()


def stats(base_url: str) -> dict:
    return httpx.get(f"{base_url}/_sandbox/stats").json()


def call(
    client: genai.Client, limiter: RateLimiter, contents: object = "Bonjour", **config
) -> GenerateResult:
    """One generate() with the test retry policy; keyword arguments make the config."""
    return generate(
        contents,
        model=MODEL,
        limiter=limiter,
        client=client,
        config=types.GenerateContentConfig(**config) if config else None,
        policy=FAST,
    )


class InProcessLimiter:
    """A limiter with no budget and nothing shared, that honours pauses within this process and
    records what it saw; production always uses the Redis GeminiLimiter (tasks/ocr.py)."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep
        self.acquired = 0
        self.reconciled: list[int] = []
        self.pauses: list[float] = []

    def acquire(self, tokens_estimate: int, max_wait_s: float) -> int:
        wait_s = self._paused_until - time.monotonic()
        if wait_s > max_wait_s:
            raise ratelimit.RateLimitTimeout(f"paused for {wait_s:.1f} s more", wait_s)
        if wait_s > 0:
            self._sleep(wait_s)
        with self._lock:
            self.acquired += 1
        return tokens_estimate

    def reconcile(self, permit: int, actual_tokens: int) -> None:
        with self._lock:
            self.reconciled.append(actual_tokens)

    def pause_all(self, seconds: float) -> None:
        with self._lock:
            self.pauses.append(seconds)
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
