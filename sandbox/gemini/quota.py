from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Quota", "Rejection", "Stats"]

LOG_LIMIT = 10_000  # request log entries kept for /_sandbox/stats


@dataclass(frozen=True)
class Rejection:
    metric: str  # "requests" or "input_token_count", as in Google's QuotaFailure
    limit: int
    retry_after_s: float


class Quota:
    """Requests and input tokens per model over a trailing window, as Gemini enforces them."""

    def __init__(self, rpm: int, tpm: int, window_s: float = 60.0) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._admitted: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._lock = threading.Lock()

    def admit(self, model: str, tokens: int, now: float | None = None) -> Rejection | None:
        now = time.time() if now is None else now
        with self._lock:
            entries = self._admitted[model]
            while entries and entries[0][0] <= now - self.window_s:
                entries.popleft()
            if len(entries) >= self.rpm:
                return Rejection("requests", self.rpm, entries[0][0] + self.window_s - now)
            used = sum(t for _, t in entries)
            if used + tokens > self.tpm:
                wait_s = self._tokens_free_in(entries, used + tokens - self.tpm, now)
                return Rejection("input_token_count", self.tpm, wait_s)
            entries.append((now, tokens))
            return None

    def _tokens_free_in(self, entries: deque[tuple[float, int]], excess: int, now: float) -> float:
        """Seconds until enough admitted tokens leave the window to free `excess` tokens."""
        freed = 0
        for admitted_at, tokens in entries:
            freed += tokens
            if freed >= excess:
                return admitted_at + self.window_s - now
        return self.window_s  # the request alone is over the limit

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()


@dataclass
class _ModelStats:
    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Stats:
    requests: int = 0
    injected_rate_limited: int = 0  # 429s of a storm fault, not of the caller's traffic
    by_status: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    by_endpoint: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    models: dict[str, _ModelStats] = field(default_factory=lambda: defaultdict(_ModelStats))
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))

    def record(
        self,
        endpoint: str,
        status: int,
        model: str | None = None,
        prompt_tokens: int = 0,
        output_tokens: int = 0,
        *,
        injected: bool = False,
        documents: list[str] | None = None,
        at: float | None = None,
    ) -> None:
        self.requests += 1
        self.injected_rate_limited += injected and status == 429
        self.by_status[status] += 1
        self.by_endpoint[endpoint] += 1
        if model is not None:
            model_stats = self.models[model]
            model_stats.requests += 1
            model_stats.rate_limited += status == 429
            model_stats.errors += status >= 400 and status != 429
            model_stats.prompt_tokens += prompt_tokens
            model_stats.output_tokens += output_tokens
        self.log.append(
            {
                "t": time.time() if at is None else at,  # generateContent: when it arrived
                "endpoint": endpoint,
                "model": model,
                "status": status,
                "prompt_tokens": prompt_tokens,
                "output_tokens": output_tokens,
                "injected": injected,
                "documents": documents or [],  # what the call read: "<document id>#<page>"
            }
        )

    def as_json(self) -> dict[str, Any]:
        prompt = sum(m.prompt_tokens for m in self.models.values())
        output = sum(m.output_tokens for m in self.models.values())
        return {
            "requests": self.requests,
            "rate_limited": self.by_status.get(429, 0),
            "injected_rate_limited": self.injected_rate_limited,
            "tokens": {"prompt": prompt, "output": output, "total": prompt + output},
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "by_endpoint": dict(self.by_endpoint),
            "models": {
                name: {**vars(m), "total_tokens": m.prompt_tokens + m.output_tokens}
                for name, m in self.models.items()
            },
            "log": list(self.log),
        }
