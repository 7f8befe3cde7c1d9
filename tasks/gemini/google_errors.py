"""What Google's errors mean here: which are worth retrying, the delay a 429 asks for, and which
of our exceptions each becomes. Messages carry the HTTP status and Google's message only."""

from __future__ import annotations

import re

import httpx
from google.genai import errors

try:
    import httpx2
except ImportError:
    httpx2 = None

from tasks.failures import Failure
from tasks.gemini.errors import RateLimited, Unavailable, rejected

__all__ = [
    "RETRYABLE_STATUS",
    "TRANSIENT_ERRORS",
    "retry_delay_s",
    "status_message",
    "translate",
]

RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})

# Timeouts and dropped connections, from httpx or from httpx2 (the SDK picks httpx2 when it is
# installed).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(module, name)
    for module in (httpx, httpx2)
    if module is not None
    for name in ("TimeoutException", "NetworkError", "RemoteProtocolError")
)


def retry_delay_s(exc: errors.APIError) -> float | None:
    """Google's RetryInfo.retryDelay ("17s", "1.5s") from a 429's details, if any."""
    body = exc.details if isinstance(exc.details, dict) else {}
    details = (body.get("error") or body).get("details") or []
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([\d.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def status_message(exc: errors.APIError) -> str:
    return f"Gemini answered {exc.code} {exc.status or ''}: {exc.message or ''}".strip()


def translate(exc: errors.APIError, what: str) -> Failure:
    """Our exception for an API error outside `generate` (which retries before it gives up)."""
    if exc.code == 429:
        return RateLimited(f"{what}: {status_message(exc)}", retry_delay_s(exc) or 60.0)
    if exc.code in RETRYABLE_STATUS:
        return Unavailable(f"{what}: {status_message(exc)}")
    return rejected(f"{what}: {status_message(exc)}", exc.code)
