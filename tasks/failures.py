"""What went wrong, cut by what the caller does next, and the one function that decides a row's
fate from it. Every adapter (queue, registry, PDF, Gemini, limiter, capacity, settings) raises
into this tree; anything else raised is a bug.

* Failure
  + RetryLater       a service, an account, capacity or a setting is missing for now: the row
                     goes back to wait without spending an attempt
  + DocumentFailed   this document failed: one attempt is spent and it is retried with backoff,
                     or, when `permanent` (trying again will not help), it goes straight to error
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from redis import RedisError

__all__ = [
    "ConfigError",
    "DocumentFailed",
    "Failure",
    "Fate",
    "RetryLater",
    "Verdict",
    "decide",
    "retry_delay",
]

RETRY_MAX_SECONDS = 15 * 60  # after a failed attempt: RETRY_BASE_SECONDS x 1, 2, 4..., capped


class Failure(Exception):
    """Something went wrong that the system knows how to handle."""

    # Said before the message on the row ("the PDF cannot be read: ..."); None: the message alone.
    what: ClassVar[str | None] = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)  # each class's docstring is its default message


class RetryLater(Failure):
    """A service or a resource is missing for now; retry without spending an attempt."""

    what: ClassVar[str | None] = "service unavailable"
    retry_after_s: float | None = None  # how long the service asked us to wait, when it said


class ConfigError(RetryLater):
    """The configuration is invalid; the message names the variables to fix. Rows wait for it to
    be fixed rather than spend their attempts."""

    what = "configuration"


class DocumentFailed(Failure):
    """This document failed; `permanent` when trying again will not help."""

    permanent: bool = False


class Fate(StrEnum):
    """What happens to the row."""

    WAIT = "wait"  # back to waiting, no attempt spent
    RETRY = "retry"  # one attempt spent, retried after a backoff
    ERROR = "error"  # to error now, for a person to look at


@dataclass(frozen=True)
class Verdict:
    fate: Fate
    message: str  # for the row's error column: what happened, in a person's words
    delay_s: int  # before the row may be claimed again


def retry_delay(attempts_so_far: int, base_s: int) -> int:
    return min(RETRY_MAX_SECONDS, base_s * 2**attempts_so_far)


def decide(exc: BaseException, *, attempts: int, base_s: int) -> Verdict:
    """The row's fate after its run raised `exc`, having spent `attempts` attempts before.

    A bug (an exception outside the tree) spends an attempt like a failed one, so that it
    cannot loop forever, and says it is unexpected."""
    backoff = retry_delay(attempts, base_s)
    if isinstance(exc, RetryLater):
        return Verdict(Fate.WAIT, _message(exc), max(int(exc.retry_after_s or 0), base_s))
    if isinstance(exc, RedisError):  # the client library's own: Redis is down or refused
        return Verdict(Fate.WAIT, f"service unavailable: Redis: {exc}", base_s)
    if isinstance(exc, DocumentFailed) and exc.permanent:
        return Verdict(Fate.ERROR, _message(exc), 0)
    if isinstance(exc, DocumentFailed):
        return Verdict(Fate.RETRY, _message(exc), backoff)
    return Verdict(Fate.RETRY, f"unexpected error: {type(exc).__name__}: {exc}", backoff)


def _message(exc: Failure) -> str:
    return f"{exc.what}: {exc}" if exc.what else str(exc)
