from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["DOWNLOAD_MODES", "Faults"]

DOWNLOAD_MODES = ("attachment", "inline")


@dataclass
class Faults:
    """What can go wrong on the stand-in site; every field can change while it runs."""

    latency_s: float = 0.0  # added to every /Sirf/ response
    session_ttl_s: float | None = None  # sessions die this long after login
    session_max_pages: int | None = None  # sessions die after this many authenticated requests
    one_session_per_account: bool = False  # a new login kills the account's older sessions
    fail_next_searches: int = 0  # the next N search submits answer HTTP 500
    stuck_next_pages: int = 0  # the next N HTML pages hold a resource that never completes
    stall_next_downloads: int = 0  # the next N downloads send half the PDF, then hang
    download_mode: str = "attachment"  # attachment (download event) | inline (shown in frame)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; a bad name or value raises ValueError and changes nothing."""
        known = {f.name: f for f in fields(self)}
        staged = asdict(self)
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {sorted(known)}")
            staged[name] = _coerce(name, value)
        if staged["download_mode"] not in DOWNLOAD_MODES:
            raise ValueError(f"download_mode must be one of {DOWNLOAD_MODES}")
        for name, value in staged.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, value: Any) -> Any:
    if name in ("session_ttl_s", "session_max_pages") and value is None:
        return None
    try:
        if name in ("latency_s", "session_ttl_s"):
            return _non_negative(float(value))
        if name == "one_session_per_account":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if name == "download_mode":
            return str(value)
        if isinstance(value, bool):
            raise TypeError
        return _non_negative(int(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for {name}: {value!r}") from exc


def _non_negative(value: float) -> Any:
    if value < 0:
        raise ValueError("negative")
    return value
