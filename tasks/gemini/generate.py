"""A Gemini call within the shared rate limit: its retry policy, what it returns, and the checks
that an answer is usable (finished with STOP, and valid JSON when JSON was requested)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic
from google import genai
from google.genai import errors, types

from tasks.coordination import ratelimit
from tasks.gemini.errors import (
    BlockedOutput,
    GeminiRetryLater,
    MalformedOutput,
    RateLimited,
    TruncatedOutput,
    Unavailable,
    rejected,
)
from tasks.gemini.google_errors import (
    RETRYABLE_STATUS,
    TRANSIENT_ERRORS,
    retry_delay_s,
    status_message,
)
from tasks.gemini.tokens import estimate_tokens

__all__ = ["GenerateResult", "RateLimiter", "RetryPolicy", "TokenUsage", "generate"]

logger = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """The seam every Gemini call passes (tasks.coordination.ratelimit.GeminiLimiter in production).

    `acquire` blocks until the call fits the budget and while a pause is in force, or raises
    tasks.coordination.ratelimit.RateLimitTimeout.
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

    def backoff_s(self, attempt: int) -> float:
        """Exponential with full jitter: base·2^(attempt-1), capped, times U(0.5, 1)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True, kw_only=True)
class TokenUsage:
    """The tokens one answer reports."""

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
    usage: TokenUsage
    model: str
    model_version: str | None
    response_id: str | None
    attempts: int


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
                failure = RateLimited(status_message(exc), delay_s)
                logger.warning(
                    "Gemini 429 on %s, pausing every caller %.1f s (attempt %d/%d)",
                    model, delay_s, attempt, policy.max_attempts,
                    extra={"action": "gemini_rate_limited", "delay_s": delay_s},
                )  # fmt: skip
                _bookkeep(limiter.pause_all, delay_s)
                continue
            if exc.code in RETRYABLE_STATUS:
                failure = Unavailable(status_message(exc), policy.backoff_s(attempt))
            else:
                _bookkeep(limiter.reconcile, permit, 0)
                raise rejected(status_message(exc), exc.code) from exc
        except TRANSIENT_ERRORS as exc:
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
    usage = TokenUsage(
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
