from __future__ import annotations

import logging
import random
import secrets
import time
from dataclasses import dataclass

import redis

from tasks.coordination.lua import read_script
from tasks.coordination.redis_keys import RedisKeys
from tasks.failures import RetryLater

__all__ = [
    "GeminiLimiter",
    "Permit",
    "RateLimitError",
    "RateLimitTimeout",
    "RateLimiterUnavailable",
    "WindowUsage",
]

logger = logging.getLogger(__name__)

WINDOW_MS = 60_000  # Gemini counts requests and tokens per trailing minute
# Gemini counts a request when it arrives, some time after we admitted it (the network, its
# front end). The window kept here is that much longer, so that a slot freed here has surely left
# Gemini's window too; without it, bench/quota.py saw 429s at the window's edge. Costs 1/61.
ARRIVAL_SKEW_MS = 1_000
DEFAULT_MAX_WAIT_S = 300.0
_UNAVAILABLE_BACKOFF_S = (0.1, 2.0)  # first and longest sleep while Redis is unreachable
_JITTER_S = 0.002  # spreads the waiters that wake for the same freed slot


class RateLimitError(RetryLater):
    """The Gemini rate limiter could not admit the request."""


class RateLimitTimeout(RateLimitError):
    """No Gemini capacity within the maximum wait; retry later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiterUnavailable(RateLimitTimeout):
    """Redis stayed unreachable for the whole wait; no Gemini call is made unmetered."""


@dataclass(frozen=True, kw_only=True)
class Permit:
    request_id: str
    tokens_estimate: int
    admitted_at_us: int  # Redis's clock
    waited_s: float


@dataclass(frozen=True, kw_only=True)
class WindowUsage:
    requests: int  # in the trailing window
    tokens: int
    max_requests: int
    max_tokens: int
    paused_for_s: float


class GeminiLimiter:
    """One shared budget of Gemini requests and tokens per trailing window, for every process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        max_rpm: int = 1600,
        max_tpm: int = 6_400_000,
        prefix: str = "",
        window_ms: int = WINDOW_MS + ARRIVAL_SKEW_MS,
    ) -> None:
        self.client = client
        self.max_rpm = max_rpm
        self.max_tpm = max_tpm
        self.window_ms = window_ms
        self._keys = k = RedisKeys(prefix)
        self._acquire = client.register_script(read_script("ratelimit_acquire"))
        self._acquire_keys = [
            k.gemini_log, k.gemini_rpm, k.gemini_tpm, k.gemini_paused, k.gemini_epoch,
        ]  # fmt: skip
        self._epoch = b""  # the limiter's memory this process has seen (ratelimit_acquire.lua)
        self._reconcile = client.register_script(read_script("ratelimit_reconcile"))
        self._pause = client.register_script(read_script("ratelimit_pause"))
        self._local_pause_until = 0.0  # monotonic; used when Redis cannot record a pause

    def try_acquire(self, tokens_estimate: int) -> Permit | float:
        """One attempt: a permit, or the seconds to wait before the next attempt."""
        self._check_estimate(tokens_estimate)
        return self._attempt(tokens_estimate, 0.0)

    def acquire(self, tokens_estimate: int, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> Permit:
        """Block until the request fits the shared budget, or raise RateLimitTimeout.

        Fails closed: while Redis is unreachable it waits and retries, and raises
        RateLimiterUnavailable when the wait runs out.
        """
        self._check_estimate(tokens_estimate)
        start = time.monotonic()
        deadline = start + max_wait_s
        backoff_s = _UNAVAILABLE_BACKOFF_S[0]
        answer: Permit | float
        while True:
            now = time.monotonic()
            if self._local_pause_until > now:
                answer = self._local_pause_until - now
            else:
                try:
                    answer = self._attempt(tokens_estimate, start)
                    backoff_s = _UNAVAILABLE_BACKOFF_S[0]
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    now = time.monotonic()
                    if now + backoff_s > deadline:
                        raise RateLimiterUnavailable(
                            f"Redis unreachable for {now - start:.1f} s: {exc}", backoff_s
                        ) from exc
                    logger.warning(
                        "rate limiter: Redis unreachable, retrying in %.1f s",
                        backoff_s,
                        extra={"action": "ratelimit_unavailable"},
                    )
                    time.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, _UNAVAILABLE_BACKOFF_S[1])
                    continue
            if isinstance(answer, Permit):
                return answer
            if time.monotonic() + answer > deadline:
                raise RateLimitTimeout(
                    f"no Gemini capacity within {max_wait_s:.1f} s (next in {answer:.2f} s)",
                    answer,
                )
            time.sleep(answer + random.uniform(0, _JITTER_S))

    def _attempt(self, tokens_estimate: int, started: float) -> Permit | float:
        request_id = secrets.token_hex(8)
        args = [request_id, tokens_estimate, self.max_rpm, self.max_tpm, self.window_ms,
                self._epoch]  # fmt: skip
        try:
            # EVALSHA straight through execute_command: Script.__call__ costs ~30 µs more per call
            answer = self.client.execute_command(
                "EVALSHA", self._acquire.sha, len(self._acquire_keys), *self._acquire_keys, *args
            )
        except redis.exceptions.NoScriptError:
            answer = self._acquire(keys=self._acquire_keys, args=args)  # loads the script
        self._epoch = answer[-1]
        if answer[0] != 1:
            if answer[2] == b"forgotten":
                logger.warning(
                    "rate limiter: Redis lost the trailing window; Gemini paused %.0f s for every"
                    " process so that no call is admitted twice over",
                    int(answer[1]) / 1000,
                    extra={"action": "ratelimit_forgotten"},
                )
            return int(answer[1]) / 1000
        return Permit(
            request_id=request_id,
            tokens_estimate=tokens_estimate,
            admitted_at_us=int(answer[1]),
            waited_s=time.monotonic() - started if started else 0.0,
        )

    def reconcile(self, permit: Permit, actual_tokens: int) -> int:
        """Replace the permit's estimate with the tokens used; returns the change applied.

        Call it once per permit: the log entry then carries the actual count.
        """
        args = [permit.request_id, permit.tokens_estimate, actual_tokens]
        return int(self._reconcile(keys=[self._keys.gemini_log, self._keys.gemini_tpm], args=args))

    def pause_all(self, seconds: float) -> float:
        """Stop every process from calling Gemini for `seconds` (a 429's retry delay).

        Returns the pause in force, in seconds; a longer pause already set is kept.
        """
        pause_ms = max(1, round(seconds * 1000))
        self._local_pause_until = max(self._local_pause_until, time.monotonic() + seconds)
        logger.warning(
            "Gemini paused for %.1f s for every process",
            seconds,
            extra={"action": "ratelimit_pause"},
        )
        return int(self._pause(keys=[self._keys.gemini_paused], args=[pause_ms])) / 1000

    def usage(self) -> WindowUsage:
        """The trailing-window totals as of the last acquire, and any pause in force."""
        rpm, tpm = self.client.mget(self._keys.gemini_rpm, self._keys.gemini_tpm)
        paused_ms = self.client.pttl(self._keys.gemini_paused)
        return WindowUsage(
            requests=int(rpm or 0),
            tokens=int(tpm or 0),
            max_requests=self.max_rpm,
            max_tokens=self.max_tpm,
            paused_for_s=max(0, paused_ms) / 1000,
        )

    def _check_estimate(self, tokens_estimate: int) -> None:
        if not 0 <= tokens_estimate <= self.max_tpm:
            raise ValueError(
                f"tokens_estimate {tokens_estimate} outside 0..{self.max_tpm} (the TPM limit)"
            )
