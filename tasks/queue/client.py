"""supabase-py clients with explicit timeouts, and calls repeated over dropped connections;
a call that cannot be made raises QueueError."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

from tasks.failures import RetryLater
from tasks.settings import Environment

__all__ = ["QueueError", "connect", "with_network_retries"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

NETWORK_RETRIES = 4
NETWORK_BACKOFF = 0.5  # seconds, doubled per retry


class QueueError(RetryLater):
    """A queue operation failed (Supabase down, a key refused); `reason` says why without naming
    the operation."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def connect(env: Environment, timeout_seconds: float) -> Client:
    """A supabase-py client with explicit timeouts; one per environment and process."""
    http = httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        http2=True,
        follow_redirects=True,
    )
    options = ClientOptions(httpx_client=http, auto_refresh_token=False, persist_session=False)
    return create_client(env.supabase_url, env.service_key.get_secret_value(), options)


def _server_error(exc: APIError) -> bool:
    """A gateway or server failure (502/503/504/520...), as opposed to a refused request."""
    code = str(exc.code or "")
    # an HTTP status when the body was no PostgREST error (three digits: a SQLSTATE has five, and
    # 23502 is a refused row, not a server error); PGRST000-003: PostgREST cannot reach
    # PostgreSQL; SQLSTATE 08/53/57: connection, resources, shutdown
    http_status = len(code) == 3 and code.isdigit() and int(code) >= 500
    return http_status or code.startswith(("PGRST00", "08", "53", "57"))


def with_network_retries(call: Callable[[], T], what: str, *, repeatable: bool = True) -> T:
    """Run a call again when the connection drops (HTTP/2 "Server disconnected", resets, timeouts)
    or Supabase answers with a server error; anything else becomes a QueueError.

    Every queue call is safe to repeat: writes are conditional on the owner and status, and a
    repeated claim returns the rows the owner already holds. A call that is not (an insert: a
    second one adds a second row) says so with `repeatable=False`: it is tried again only when it
    never left (the connection failed), and a failure that may have reached Supabase says so
    instead of being hidden by a retry.
    """
    for attempt in range(NETWORK_RETRIES + 1):
        try:
            return call()
        except (httpx.TransportError, APIError) as exc:
            if isinstance(exc, APIError) and not _server_error(exc):
                hint = f" ({exc.hint})" if exc.hint else ""
                refused = f"Supabase refused the request: {exc.message}{hint}"
                raise QueueError(f"{what}: {refused}", refused) from exc
            maybe_made = not repeatable and not _never_sent(exc)
            if attempt == NETWORK_RETRIES or maybe_made:
                unreachable = f"Supabase unreachable ({type(exc).__name__})"
                if maybe_made:
                    unreachable += ", not tried again: it may have been written, look first"
                raise QueueError(f"{what}: {unreachable}", unreachable) from exc
            delay = NETWORK_BACKOFF * 2**attempt
            # debug: the caller says the outcome (a loop would say this at every tick)
            logger.debug("%s: %s, retrying in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _never_sent(exc: Exception) -> bool:
    """The connection failed before the request went out, so it cannot have been made."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
