"""The exceptions of a Gemini call, cut by what the caller does:
* GeminiError
  - GeminiRetryLater: Gemini or its quota is busy; retry the job later (`retry_after_s`)
    - RateLimited: 429 after every attempt, or no capacity from the shared rate limiter
    - Unavailable: 5xx or timeouts after every attempt
  - GeminiRejected: Gemini refuses this request (400, 403, 404); retrying will not help
  - BadOutput: an answer came back but cannot be used
    - TruncatedOutput (MAX_TOKENS), BlockedOutput (SAFETY, RECITATION...), MalformedOutput
  - GeminiConfigError: no API key configured
Messages carry the HTTP status and Google's message, never the key or request headers.
"""

from __future__ import annotations

__all__ = [
    "BadOutput",
    "BlockedOutput",
    "GeminiConfigError",
    "GeminiError",
    "GeminiRejected",
    "GeminiRetryLater",
    "MalformedOutput",
    "RateLimited",
    "TruncatedOutput",
    "Unavailable",
]


class GeminiError(Exception):
    """A Gemini call failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class GeminiRetryLater(GeminiError):
    """Gemini is busy or unreachable; retry the job later."""

    def __init__(self, message: str | None = None, retry_after_s: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(GeminiRetryLater):
    """Gemini's quota is exhausted (429), or the shared rate limiter had no capacity in time."""


class Unavailable(GeminiRetryLater):
    """Gemini kept answering 5xx or timing out."""


class GeminiRejected(GeminiError):
    """Gemini refused the request (400/403/404): retrying the same request will not help."""

    def __init__(self, message: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadOutput(GeminiError):
    """Gemini answered, but the answer cannot be used."""


class TruncatedOutput(BadOutput):
    """The answer stopped at the output token limit (MAX_TOKENS): it is incomplete."""


class BlockedOutput(BadOutput):
    """Gemini stopped or blocked the answer (SAFETY, RECITATION, ...)."""


class MalformedOutput(BadOutput):
    """A JSON answer was requested and the text is not valid JSON for the schema."""


class GeminiConfigError(GeminiError):
    """No Gemini API key is configured: set GEMINI_API_KEY."""
