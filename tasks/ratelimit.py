from __future__ import annotations

import logging
import random
import secrets
import time
from dataclasses import dataclass

import redis

from tasks.settings import Settings

__all__ = [
    "GeminiLimiter",
    "Permit",
    "RateLimitError",
    "RateLimitTimeout",
    "RateLimiterUnavailable",
    "Usage",
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

# The admission check. Checking and taking in one script closes the race the seed had: two
# processes both reading "room for one more" and both calling Gemini. Entries older than the
# window are trimmed first, so the counts are exact for the trailing window ending now. A log
# member is "<request id>:<tokens>", so the log alone holds the state; tpm_current is its running
# token total. log, rpm_current and tpm_current always expire together, a window after the last
# admission, so a total never outlives its log.
# If Redis loses its data (a restart without persistence), the window is forgotten while Gemini
# still counts it: a process that knew the previous epoch then pauses everyone until a window has
# passed since the new epoch began, so the forgotten calls cannot be admitted twice over.
# KEYS[1] = log (zset "<request id>:<tokens>" -> admitted at, µs on Redis's clock)
# KEYS[2] = rpm_current, KEYS[3] = tpm_current, KEYS[4] = paused, KEYS[5] = epoch ("<id>:<ms>")
# ARGV[1] = request id, ARGV[2] = tokens estimate, ARGV[3] = max requests, ARGV[4] = max tokens,
# ARGV[5] = window ms, ARGV[6] = the epoch this process knows ('' for none yet)
# Returns {1, admitted at µs, epoch} or {0, wait ms, reason ('paused'|'rpm'|'tpm'|'forgotten'),
# epoch}.
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local window_us = tonumber(ARGV[5]) * 1000

local epoch = redis.call('GET', KEYS[5])
if not epoch then
  epoch = ARGV[1] .. ':' .. string.format('%.0f', now_ms)
  redis.call('SET', KEYS[5], epoch)
end
if ARGV[6] ~= '' and epoch ~= ARGV[6] then
  local left = tonumber(string.match(epoch, ':(%d+)$')) + tonumber(ARGV[5]) - now_ms
  if left > 0 and left > redis.call('PTTL', KEYS[4]) then
    redis.call('SET', KEYS[4], '1', 'PX', left)
  end
  return {0, math.max(1, left), 'forgotten', epoch}
end

local paused_ms = redis.call('PTTL', KEYS[4])
if paused_ms > 0 then
  return {0, paused_ms, 'paused', epoch}
end
-- Lua would print these µs timestamps with 14 significant digits; format them whole
local horizon = string.format('%.0f', now_us - window_us)

local tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
if #expired > 0 then
  for _, member in ipairs(expired) do
    tokens = tokens - tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
end
local count = redis.call('ZCARD', KEYS[1])
if count == 0 or tokens < 0 then tokens = 0 end

local need = tonumber(ARGV[2])
local max_requests = tonumber(ARGV[3])
local max_tokens = tonumber(ARGV[4])
local wait_us = 0
local reason = ''
if count + 1 > max_requests then
  local oldest = redis.call('ZRANGE', KEYS[1], count - max_requests, count - max_requests,
                            'WITHSCORES')
  wait_us = tonumber(oldest[2]) + window_us - now_us
  reason = 'rpm'
end
if tokens + need > max_tokens then
  -- walk from the oldest entry until enough tokens would have left the window
  local excess = tokens + need - max_tokens
  local tpm_wait_us = window_us
  local start = 0
  while excess > 0 do
    local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      excess = excess - tonumber(string.match(batch[i], ':(%d+)$'))
      if excess <= 0 then
        tpm_wait_us = tonumber(batch[i + 1]) + window_us - now_us
        break
      end
    end
    start = start + 100
  end
  if reason == '' or tpm_wait_us > wait_us then
    wait_us = tpm_wait_us
    reason = 'tpm'
  end
end
if reason ~= '' then
  if #expired > 0 then
    redis.call('SET', KEYS[2], count, 'KEEPTTL')
    redis.call('SET', KEYS[3], tokens, 'KEEPTTL')
  end
  return {0, math.max(1, math.ceil(wait_us / 1000)), reason, epoch}
end

local admitted = string.format('%.0f', now_us)
redis.call('ZADD', KEYS[1], admitted, ARGV[1] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], count + 1, 'PX', ARGV[5])
redis.call('SET', KEYS[3], tokens + need, 'PX', ARGV[5])
return {1, admitted, epoch}
"""

# Replaces a request's estimate with the tokens Gemini reports, if the request is still in the
# log (once it has left the window its tokens no longer count anyway). Expiries are kept as they
# are, so the total still expires with its log.
# KEYS[1] = log, KEYS[2] = tpm_current
# ARGV[1] = request id, ARGV[2] = tokens estimate, ARGV[3] = actual tokens
# Returns the change applied to the trailing-window token total.
_RECONCILE_SCRIPT = """
local old_member = ARGV[1] .. ':' .. ARGV[2]
local admitted = redis.call('ZSCORE', KEYS[1], old_member)
if not admitted then return 0 end
redis.call('ZREM', KEYS[1], old_member)
redis.call('ZADD', KEYS[1], admitted, ARGV[1] .. ':' .. ARGV[3])
local delta = tonumber(ARGV[3]) - tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[2]) or '0') + delta
redis.call('SET', KEYS[2], math.max(0, total), 'KEEPTTL')
return delta
"""

# Pauses every process; a shorter pause never cuts a longer one short.
# KEYS: paused_until
# ARGV: pause_ms
# Returns the pause in force, ms.
_PAUSE_SCRIPT = """
local left = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if left >= want then return left end
redis.call('SET', KEYS[1], '1', 'PX', want)
return want
"""


class RateLimitError(Exception):
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
class Usage:
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
        self.log_key = f"{prefix}gemini:log"
        self.rpm_key = f"{prefix}gemini:rpm:current"
        self.tpm_key = f"{prefix}gemini:tpm:current"
        self.paused_key = f"{prefix}gemini:paused"
        self.epoch_key = f"{prefix}gemini:epoch"
        self._acquire = client.register_script(_ACQUIRE_SCRIPT)
        self._acquire_keys = [
            self.log_key, self.rpm_key, self.tpm_key, self.paused_key, self.epoch_key,
        ]  # fmt: skip
        self._epoch = b""  # the limiter's memory this process has seen (see _ACQUIRE_SCRIPT)
        self._reconcile = client.register_script(_RECONCILE_SCRIPT)
        self._pause = client.register_script(_PAUSE_SCRIPT)
        self._local_pause_until = 0.0  # monotonic; used when Redis cannot record a pause

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> GeminiLimiter:
        return cls(
            client or redis.Redis.from_url(settings.redis_url),
            max_rpm=settings.gemini_max_rpm,
            max_tpm=settings.gemini_max_tpm,
            prefix=settings.redis_key_prefix,
        )

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
        return int(self._reconcile(keys=[self.log_key, self.tpm_key], args=args))

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
        return int(self._pause(keys=[self.paused_key], args=[pause_ms])) / 1000

    def usage(self) -> Usage:
        """The trailing-window totals as of the last acquire, and any pause in force."""
        rpm, tpm = self.client.mget(self.rpm_key, self.tpm_key)
        paused_ms = self.client.pttl(self.paused_key)
        return Usage(
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
