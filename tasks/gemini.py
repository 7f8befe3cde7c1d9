"""The one way this project calls Gemini: every model call goes through `generate`.

Exceptions, cut by what the caller does:
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

import functools
import io
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pydantic

try:
    import httpx2
except ImportError:
    httpx2 = None
from google import genai
from google.genai import errors, types
from PIL import Image

from tasks import pages, ratelimit
from tasks.settings import Settings

__all__ = [
    "BadOutput",
    "BlockedOutput",
    "GeminiConfigError",
    "GeminiError",
    "GeminiRejected",
    "GeminiRetryLater",
    "GenerateResult",
    "MalformedOutput",
    "RateLimited",
    "RateLimiter",
    "RetryPolicy",
    "TruncatedOutput",
    "Unavailable",
    "Usage",
    "client_from_settings",
    "delete_file",
    "document_part",
    "estimate_tokens",
    "generate",
    "make_client",
    "retry_delay_s",
    "upload_file",
]

logger = logging.getLogger(__name__)

TOKENS_PER_IMAGE_TILE = 258  # an image up to 384 px, each 768 px tile of a bigger one, a PDF page
CHARS_PER_TOKEN = 4
RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})
# Gemini caps a whole request at 20 MB, and base64 inflates bytes by 4/3: keep a margin for the
# prompt. Bigger documents go through the Files API.
REQUEST_LIMIT_BYTES = 20 * 1024 * 1024
REQUEST_MARGIN_BYTES = 512 * 1024
FILE_POLL_S = 2.0
FILE_READY_TIMEOUT_S = 60.0

# Timeouts and dropped connections, from httpx or from httpx2 (the SDK picks httpx2 when it is
# installed).
_TRANSIENT: tuple[type[Exception], ...] = tuple(
    getattr(module, name)
    for module in (httpx, httpx2)
    if module is not None
    for name in ("TimeoutException", "NetworkError", "RemoteProtocolError")
)


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


class RateLimiter(Protocol):
    """The seam every Gemini call passes. tasks.ratelimit.GeminiLimiter is the production one.

    `acquire` blocks until the call fits the budget and while a pause is in force, or raises
    tasks.ratelimit.RateLimitTimeout.
    """

    def acquire(self, tokens_estimate: int, max_wait_s: float) -> Any: ...

    def reconcile(self, permit: Any, actual_tokens: int) -> Any: ...

    def pause_all(self, seconds: float) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_wait_s: float = 300.0  # for capacity from the rate limiter, per attempt

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.gemini_max_attempts, max_wait_s=settings.gemini_max_wait_seconds
        )

    def backoff_s(self, attempt: int) -> float:
        """Exponential with full jitter: base·2^(attempt-1), capped, times U(0.5, 1)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True, kw_only=True)
class Usage:
    prompt_tokens: int
    output_tokens: int  # the answer's tokens (candidates), thinking excluded
    total_tokens: int
    thoughts_tokens: int = 0  # the 2.5 models think unless told not to

    @property
    def billed_output_tokens(self) -> int:
        """Google bills thinking tokens as output tokens."""
        return self.output_tokens + self.thoughts_tokens


@dataclass(frozen=True, kw_only=True)
class GenerateResult:
    text: str
    parsed: Any  # the JSON value (or the schema's pydantic model) when JSON was requested
    usage: Usage
    model: str
    model_version: str | None
    response_id: str | None
    attempts: int


def make_client(api_key: str, base_url: str | None = None, timeout_s: float = 300) -> genai.Client:
    """A client whose SDK-side retries are off: `generate` owns retries and the rate limit."""
    options = types.HttpOptions(
        base_url=base_url,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),  # 1 attempt = the SDK never retries
    )
    return genai.Client(api_key=api_key, http_options=options)


@functools.lru_cache(maxsize=4)
def _cached_client(pid: int, api_key: str, base_url: str | None, timeout_s: float) -> genai.Client:
    return make_client(api_key, base_url, timeout_s)


def client_from_settings(settings: Settings) -> genai.Client:
    """One client per process (and per configuration), reused by every call."""
    if settings.gemini_api_key is None or not settings.gemini_api_key.get_secret_value():
        raise GeminiConfigError()
    return _cached_client(
        os.getpid(),  # a forked child must not share the parent's connection pool
        settings.gemini_api_key.get_secret_value(),
        settings.gemini_base_url,
        settings.gemini_timeout_seconds,
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


def _image_tokens(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return TOKENS_PER_IMAGE_TILE
    if width <= 384 and height <= 384:
        return TOKENS_PER_IMAGE_TILE
    return TOKENS_PER_IMAGE_TILE * math.ceil(width / 768) * math.ceil(height / 768)


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return math.ceil(len(part) / CHARS_PER_TOKEN)
    if isinstance(part, types.Part):
        if part.text is not None:
            return math.ceil(len(part.text) / CHARS_PER_TOKEN)
        blob = part.inline_data
        if blob is not None and blob.data is not None:
            if blob.mime_type == "application/pdf":
                try:
                    return TOKENS_PER_IMAGE_TILE * pages.page_count(blob.data)
                except pages.PdfError:
                    return TOKENS_PER_IMAGE_TILE
            return _image_tokens(blob.data)
        return 0  # a Files API reference: the caller knows its size, pass tokens_estimate
    if isinstance(part, types.Content):
        return sum(_part_tokens(p) for p in part.parts or [])
    return 0


def estimate_tokens(contents: Sequence[Any] | Any) -> int:
    """Input tokens as Gemini counts them: its TPM quota counts input tokens only (quota id
    GenerateContentInputTokensPerModelPerMinute), so output tokens take none of it."""
    items = contents if isinstance(contents, list | tuple) else [contents]
    return sum(_part_tokens(p) for p in items)


def _status(exc: errors.APIError) -> str:
    return f"Gemini answered {exc.code} {exc.status or ''}: {exc.message or ''}".strip()


def _text(response: types.GenerateContentResponse) -> str:
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    return "".join(p.text for p in parts if p.text and not p.thought)


def _check_output(response: types.GenerateContentResponse, model: str) -> str:
    if not response.candidates:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise BlockedOutput(f"{model} blocked the prompt: {feedback.block_reason.value}")
        raise MalformedOutput(f"{model} answered without any candidate")
    reason = response.candidates[0].finish_reason
    if reason is None or reason == types.FinishReason.STOP:
        return _text(response)
    if reason == types.FinishReason.MAX_TOKENS:
        raise TruncatedOutput(f"{model} stopped at the output token limit (MAX_TOKENS)")
    raise BlockedOutput(f"{model} stopped the answer: {reason.value}")


def _parse_json(text: str, schema: Any, model: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedOutput(f"{model} answered invalid JSON ({exc.msg} at {exc.pos})") from exc
    if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
        try:
            return schema.model_validate(value)
        except pydantic.ValidationError as exc:
            raise MalformedOutput(
                f"{model} answered JSON that does not fit {schema.__name__}:"
                f" {exc.error_count()} errors"
            ) from exc
    return value


LOGGED_WAIT_S = 0.5  # a shorter wait at the limiter is not worth a line in the run's log


def generate(
    contents: Any,
    *,
    model: str,
    limiter: RateLimiter,
    client: genai.Client,
    config: types.GenerateContentConfig | None = None,
    tokens_estimate: int | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GenerateResult:
    """Call Gemini once, within the rate limit, retrying what is worth retrying.

    Each attempt takes a permit from `limiter`. A 429 pauses every caller of the limiter for
    Google's retryDelay and tries again; 5xx and timeouts back off exponentially with jitter; a
    4xx raises GeminiRejected at once. The answer must finish with STOP (else TruncatedOutput /
    BlockedOutput) and, when JSON was requested, parse (else MalformedOutput). The permit is
    reconciled with the input tokens Gemini reports.
    """
    policy = policy or RetryPolicy()
    estimate = tokens_estimate if tokens_estimate is not None else estimate_tokens(contents)
    failure: GeminiRetryLater | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            permit = limiter.acquire(estimate, policy.max_wait_s)
        except ratelimit.RateLimitTimeout as exc:
            raise RateLimited(f"no Gemini capacity: {exc}", exc.retry_after_s) from exc
        if getattr(permit, "waited_s", 0) >= LOGGED_WAIT_S:
            logger.info("waited %.1f s at the shared Gemini rate limiter (%s)", permit.waited_s,
                        model, extra={"action": "gemini_limiter_wait"})  # fmt: skip
        try:
            response = client.models.generate_content(model=model, contents=contents, config=config)
        except errors.APIError as exc:
            if exc.code == 429:
                _bookkeep(limiter.reconcile, permit, 0)  # Google did not count a refused request
                delay_s = retry_delay_s(exc) or policy.backoff_s(attempt)
                failure = RateLimited(_status(exc), delay_s)
                logger.warning(
                    "Gemini 429 on %s, pausing every caller %.1f s (attempt %d/%d)",
                    model, delay_s, attempt, policy.max_attempts,
                    extra={"action": "gemini_rate_limited", "delay_s": delay_s},
                )  # fmt: skip
                _bookkeep(limiter.pause_all, delay_s)
                continue
            if exc.code in RETRYABLE_STATUS:
                failure = Unavailable(_status(exc), policy.backoff_s(attempt))
            else:
                _bookkeep(limiter.reconcile, permit, 0)
                raise GeminiRejected(_status(exc), exc.code) from exc
        except _TRANSIENT as exc:
            failure = Unavailable(f"Gemini call failed: {type(exc).__name__}", policy.backoff_s(1))
        else:
            return _result(response, model, config, attempt, limiter, permit)
        # 5xx or a timeout: the request may have been counted, keep the estimate.
        logger.warning(
            "Gemini %s on %s (attempt %d/%d)", failure, model, attempt, policy.max_attempts,
            extra={"action": "gemini_retry"},
        )  # fmt: skip
        if attempt < policy.max_attempts:
            sleep(policy.backoff_s(attempt))
    assert failure is not None
    raise failure


def _bookkeep(call: Callable[..., Any], *args: Any) -> None:
    """Best effort: a failed reconcile or pause must not throw away a paid answer; the limiter's
    window forgets the estimate within a minute, and its acquire fails closed if Redis is gone."""
    try:
        call(*args)
    except Exception as exc:
        logger.warning("rate-limit bookkeeping failed: %s", type(exc).__name__)


def _result(
    response: types.GenerateContentResponse,
    model: str,
    config: types.GenerateContentConfig | None,
    attempt: int,
    limiter: RateLimiter,
    permit: Any,
) -> GenerateResult:
    meta = response.usage_metadata
    usage = Usage(
        prompt_tokens=(meta.prompt_token_count or 0) if meta else 0,
        output_tokens=(meta.candidates_token_count or 0) if meta else 0,
        total_tokens=(meta.total_token_count or 0) if meta else 0,
        thoughts_tokens=(meta.thoughts_token_count or 0) if meta else 0,
    )
    _bookkeep(limiter.reconcile, permit, usage.prompt_tokens)  # what the TPM quota counts
    text = _check_output(response, model)
    parsed = None
    if config is not None and config.response_mime_type == "application/json":
        parsed = _parse_json(text, config.response_schema, model)
    return GenerateResult(
        text=text,
        parsed=parsed,
        usage=usage,
        model=model,
        model_version=response.model_version,
        response_id=response.response_id,
        attempts=attempt,
    )


def _translate(exc: errors.APIError, what: str) -> GeminiError:
    if exc.code == 429:
        return RateLimited(f"{what}: {_status(exc)}", retry_delay_s(exc) or 60.0)
    if exc.code in RETRYABLE_STATUS:
        return Unavailable(f"{what}: {_status(exc)}")
    return GeminiRejected(f"{what}: {_status(exc)}", exc.code)


def upload_file(
    client: genai.Client,
    data: bytes,
    *,
    mime_type: str,
    display_name: str,
    poll_s: float = FILE_POLL_S,
    ready_timeout_s: float = FILE_READY_TIMEOUT_S,
) -> types.File:
    """Upload to the Files API and wait until the file is ACTIVE."""
    config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name)
    try:
        file = client.files.upload(file=io.BytesIO(data), config=config)
        deadline = time.monotonic() + ready_timeout_s
        while file.state == types.FileState.PROCESSING:
            if time.monotonic() > deadline:
                delete_file(client, file)
                raise Unavailable(f"{display_name} still PROCESSING after {ready_timeout_s:.0f} s")
            time.sleep(poll_s)
            file = client.files.get(name=file.name or "")
    except errors.APIError as exc:
        raise _translate(exc, f"uploading {display_name}") from exc
    if file.state == types.FileState.FAILED:
        delete_file(client, file)
        raise GeminiRejected(f"Gemini could not process {display_name} (state FAILED)")
    return file


def delete_file(client: genai.Client, file: types.File) -> None:
    """Best effort: the file expires after 48 h anyway, and a failed delete must not hide the
    error that brought us here."""
    try:
        client.files.delete(name=file.name or "")
    except (errors.APIError, *_TRANSIENT) as exc:
        logger.warning(
            "could not delete Gemini file %s: %s", file.name, type(exc).__name__,
            extra={"action": "gemini_file_delete_failed"},
        )  # fmt: skip


def _inline_fits(size: int) -> bool:
    return 4 * math.ceil(size / 3) + REQUEST_MARGIN_BYTES <= REQUEST_LIMIT_BYTES


@contextmanager
def document_part(
    client: genai.Client,
    data: bytes,
    *,
    mime_type: str,
    display_name: str,
    inline: bool | None = None,
) -> Iterator[types.Part]:
    """The document as a request part: inline when the request stays under 20 MB, else through
    the Files API, with the uploaded file deleted on the way out whatever happens."""
    if inline if inline is not None else _inline_fits(len(data)):
        yield types.Part(inline_data=types.Blob(data=data, mime_type=mime_type))
        return
    file = upload_file(client, data, mime_type=mime_type, display_name=display_name)
    try:
        yield types.Part(file_data=types.FileData(file_uri=file.uri, mime_type=mime_type))
    finally:
        delete_file(client, file)
