from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["FaultSwitch", "Faults", "Injected"]


@dataclass
class Faults:
    """Misbehaviour switched on through POST /_sandbox/faults; counts apply to generateContent."""

    error_status: int = 503  # 500 or 503
    error_count: int = 0  # the next N calls answer error_status
    delay_s: float = 0.0  # answer this much later...
    delay_count: int = -1  # ...for the next N calls (-1: every call)
    truncate_count: int = 0  # the next N calls stop at MAX_TOKENS with half the text
    malformed_json_count: int = 0  # the next N JSON-mode calls answer broken JSON
    invalid_argument_match: str | None = None  # a 400 INVALID_ARGUMENT when a text part has this
    file_processing_s: float = 0.0  # uploaded files stay PROCESSING this long
    # a quota storm not of the caller's making (another app on the project): the next N calls
    # answer 429 RESOURCE_EXHAUSTED carrying this retryDelay; counted apart in the stats
    rate_limit_count: int = 0
    rate_limit_retry_s: float = 2.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Injected:
    error_status: int | None = None
    delay_s: float = 0.0
    truncate: bool = False
    malformed_json: bool = False
    invalid_argument: bool = False


class FaultSwitch:
    def __init__(self) -> None:
        self.faults = Faults()
        self._lock = threading.Lock()

    def update(self, changes: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known - {"reset"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            if changes.get("reset"):
                self.faults = Faults()
            for name, value in changes.items():
                if name != "reset":
                    setattr(self.faults, name, value)
            return self.faults

    def storm(self) -> float | None:
        """The retry delay of an injected 429 for this call, if a storm is on; consumes one."""
        with self._lock:
            if self.faults.rate_limit_count <= 0:
                return None
            self.faults.rate_limit_count -= 1
            return self.faults.rate_limit_retry_s

    def draw(self, prompt: str, wants_json: bool) -> Injected:
        """The faults this call gets; consumes one unit of each counted fault that applies."""
        with self._lock:
            f = self.faults
            match = f.invalid_argument_match
            if match and match in prompt:
                return Injected(invalid_argument=True)
            delay_s = 0.0
            if f.delay_s > 0 and f.delay_count != 0:
                delay_s = f.delay_s
                if f.delay_count > 0:
                    f.delay_count -= 1
            if f.error_count > 0:
                f.error_count -= 1
                return Injected(error_status=f.error_status, delay_s=delay_s)
            truncate = f.truncate_count > 0
            f.truncate_count -= truncate
            malformed = wants_json and f.malformed_json_count > 0
            f.malformed_json_count -= malformed
            return Injected(delay_s=delay_s, truncate=truncate, malformed_json=malformed)
