"""The google-genai client: one per process, with the SDK's own retries off."""

from __future__ import annotations

import functools
import os

from google import genai
from google.genai import types

from tasks.gemini.errors import GeminiConfigError

__all__ = ["GeminiConfigError", "make_client", "shared_client"]


def make_client(api_key: str, base_url: str | None = None, timeout_s: float = 300) -> genai.Client:
    """A client whose SDK-side retries are off: `generate` owns retries and the rate limit."""
    options = types.HttpOptions(
        base_url=base_url,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),  # 1 attempt = the SDK never retries
    )
    return genai.Client(api_key=api_key, http_options=options)


def shared_client(api_key: str, base_url: str | None, timeout_s: float) -> genai.Client:
    """One client per process (and per configuration), reused by every call."""
    # keyed by pid: a forked child must not share the parent's connection pool
    return _cached_client(os.getpid(), api_key, base_url, timeout_s)


@functools.lru_cache(maxsize=4)
def _cached_client(pid: int, api_key: str, base_url: str | None, timeout_s: float) -> genai.Client:
    return make_client(api_key, base_url, timeout_s)
