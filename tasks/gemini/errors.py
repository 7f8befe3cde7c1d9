"""The exceptions of a Gemini call, in the failure tree (tasks/failures.py):
* RetryLater
  - GeminiRetryLater: Gemini or its quota is busy; the row waits (`retry_after_s`)
    - RateLimited: 429 after every attempt, or no capacity from the shared rate limiter
    - Unavailable: 5xx or timeouts after every attempt
  - GeminiConfigError: no API key configured, or the key or model refused (401, 403, 404)
* DocumentFailed
  - GeminiRejected (permanent): Gemini refuses this request (400); retrying will not help
  - BadOutput: an answer came back but cannot be used; reading again may do better
    - TruncatedOutput (MAX_TOKENS), BlockedOutput (SAFETY, RECITATION...), MalformedOutput
Messages carry the HTTP status and Google's message, never the key or request headers.
"""

from __future__ import annotations

from tasks.failures import DocumentFailed, RetryLater

__all__ = [
    "SETUP_STATUS",
    "BadOutput",
    "BlockedOutput",
    "GeminiConfigError",
    "GeminiRejected",
    "GeminiRetryLater",
    "MalformedOutput",
    "RateLimited",
    "TruncatedOutput",
    "Unavailable",
    "rejected",
]


SETUP_STATUS = (401, 403, 404)  # a revoked key or a wrong model name: not the document's fault


class GeminiRetryLater(RetryLater):
    """Gemini is busy or unreachable; retry the job later."""

    what = "Gemini unavailable"

    def __init__(self, message: str | None = None, retry_after_s: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(GeminiRetryLater):
    """Gemini's quota is exhausted (429), or the shared rate limiter had no capacity in time."""


class Unavailable(GeminiRetryLater):
    """Gemini kept answering 5xx or timing out."""


class GeminiRejected(DocumentFailed):
    """Gemini refused the request (400): retrying the same request will not help."""

    what = "Gemini refused the document"
    permanent = True

    def __init__(self, message: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadOutput(DocumentFailed):
    """Gemini answered, but the answer cannot be used."""

    what = "Gemini's answer was unusable"


class TruncatedOutput(BadOutput):
    """The answer stopped at the output token limit (MAX_TOKENS): it is incomplete."""


class BlockedOutput(BadOutput):
    """Gemini stopped or blocked the answer (SAFETY, RECITATION, ...)."""


class MalformedOutput(BadOutput):
    """A JSON answer was requested and the text is not valid JSON for the schema."""


class GeminiConfigError(RetryLater):
    """No Gemini API key is configured: set GEMINI_API_KEY."""

    what = "Gemini configuration"

    def __init__(self, message: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def rejected(message: str, status_code: int) -> GeminiRejected | GeminiConfigError:
    """A 4xx: the key or the model when it is one of SETUP_STATUS, else the request itself."""
    if status_code in SETUP_STATUS:
        return GeminiConfigError(message, status_code)
    return GeminiRejected(message, status_code)
