from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai

from sandbox import gemini as standin
from tasks import gemini

API_KEY = "test-key-not-secret"
MODEL = "gemini-2.0-flash"
FAST = gemini.RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05, max_wait_s=10)


@pytest.fixture(scope="session")
def standin_url() -> Iterator[str]:
    """One stand-in for the session, knowing the registry catalogue's pages."""
    with standin.serve(API_KEY, rpm=10_000, tpm=100_000_000) as url:
        yield url


@pytest.fixture
def base_url(standin_url: str) -> str:
    """The session stand-in with fresh counters, no faults and no files."""
    httpx.post(f"{standin_url}/_sandbox/reset").raise_for_status()
    return standin_url


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
