from __future__ import annotations

from typing import Any

import httpx

__all__ = ["counters", "expire_sessions", "faults", "reset_counters", "reset_faults", "set_faults"]

TIMEOUT_S = 5.0


def _call(method: str, base_url: str, path: str, json: Any = None) -> Any:
    response = httpx.request(method, f"{base_url}/_sandbox/{path}", json=json, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def set_faults(base_url: str, **changes: Any) -> dict[str, Any]:
    """Change some faults of a running stand-in; returns all of them."""
    return _call("POST", base_url, "faults", changes)


def faults(base_url: str) -> dict[str, Any]:
    return _call("GET", base_url, "faults")


def reset_faults(base_url: str) -> dict[str, Any]:
    return _call("DELETE", base_url, "faults")


def counters(base_url: str) -> dict[str, Any]:
    return _call("GET", base_url, "counters")


def reset_counters(base_url: str) -> dict[str, Any]:
    return _call("DELETE", base_url, "counters")


def expire_sessions(base_url: str) -> int:
    """Invalidate every open session now; returns how many there were."""
    return _call("POST", base_url, "sessions/expire")["expired"]
