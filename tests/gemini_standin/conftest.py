from __future__ import annotations

import httpx
import pytest
from google import genai
from google.genai import types

from tasks import gemini

API_KEY = "test-gemini-key-not-secret"  # the key tests/conftest.py starts it with
MODEL = "gemini-2.0-flash"
FAST = gemini.RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05, max_wait_s=10)


@pytest.fixture
def base_url(gemini_api: str) -> str:
    """The session's stand-in (tests/conftest.py), with fresh counters, no faults, no files."""
    return gemini_api


@pytest.fixture
def client(base_url: str) -> genai.Client:
    return gemini.make_client(API_KEY, base_url, timeout_s=10)


@pytest.fixture
def limiter() -> gemini.InProcessLimiter:
    return gemini.InProcessLimiter()


def set_faults(base_url: str, **faults: object) -> None:
    httpx.post(f"{base_url}/_sandbox/faults", json=faults).raise_for_status()


def stats(base_url: str) -> dict:
    return httpx.get(f"{base_url}/_sandbox/stats").json()


def call(
    client: genai.Client, limiter: gemini.RateLimiter, contents: object = "Bonjour", **config
) -> gemini.GenerateResult:
    """One generate() with the test retry policy; keyword arguments make the config."""
    return gemini.generate(
        contents,
        model=MODEL,
        limiter=limiter,
        client=client,
        config=types.GenerateContentConfig(**config) if config else None,
        policy=FAST,
    )
