from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandbox.registry.faults import Faults

__all__ = ["Session", "SiteState"]


@dataclass
class Session:
    id: str
    username: str
    created_at: float  # time.monotonic()
    requests: int = 0


@dataclass
class SiteState:
    """Everything the running site remembers: faults, sessions and what tests may count."""

    faults: Faults = field(default_factory=Faults)
    sessions: dict[str, Session] = field(default_factory=dict)
    logins: Counter[str] = field(default_factory=Counter)
    login_failures: Counter[str] = field(default_factory=Counter)
    searches: Counter[str] = field(default_factory=Counter)
    downloads: Counter[str] = field(default_factory=Counter)
    stalled_downloads: int = 0
    server_errors: int = 0
    sessions_expired: int = 0
    pages: int = 0
    responses: int = 0  # every /Sirf/ response the latency applies to (pages, frames, PDFs)

    def login(self, username: str) -> Session:
        if self.faults.one_session_per_account:
            for old in [s for s in self.sessions.values() if s.username == username]:
                self._drop(old.id)
        session = Session(id=secrets.token_hex(12), username=username, created_at=time.monotonic())
        self.sessions[session.id] = session
        self.logins[username] += 1
        return session

    def logout(self, session_id: str | None) -> None:
        self.sessions.pop(session_id or "", None)

    def use_session(self, session_id: str | None) -> Session | None:
        """The live session behind this cookie, counting one more request; None once expired."""
        session = self.sessions.get(session_id or "")
        if session is None:
            return None
        faults = self.faults
        too_old = (
            faults.session_ttl_s is not None
            and time.monotonic() - session.created_at > faults.session_ttl_s
        )
        too_used = (
            faults.session_max_pages is not None and session.requests >= faults.session_max_pages
        )
        if too_old or too_used:
            self._drop(session.id)
            return None
        session.requests += 1
        return session

    def expire_all(self) -> int:
        count = len(self.sessions)
        for session_id in list(self.sessions):
            self._drop(session_id)
        return count

    def _drop(self, session_id: str) -> None:
        if self.sessions.pop(session_id, None) is not None:
            self.sessions_expired += 1

    def take(self, fault: str) -> bool:
        """Consume one unit of a countdown fault (fail_next_searches, ...)."""
        left = getattr(self.faults, fault)
        if left <= 0:
            return False
        setattr(self.faults, fault, left - 1)
        return True

    def counters(self) -> dict[str, Any]:
        return {
            "logins": dict(self.logins),
            "login_failures": dict(self.login_failures),
            "active_sessions": sorted(s.username for s in self.sessions.values()),
            "sessions_expired": self.sessions_expired,
            "searches": dict(self.searches),
            "downloads": sum(self.downloads.values()),
            "downloads_by_document": dict(self.downloads),
            "stalled_downloads": self.stalled_downloads,
            "server_errors": self.server_errors,
            "pages": self.pages,
            "responses": self.responses,
        }

    def reset_counters(self) -> None:
        self.logins.clear()
        self.login_failures.clear()
        self.searches.clear()
        self.downloads.clear()
        self.stalled_downloads = self.server_errors = self.sessions_expired = self.pages = 0
        self.responses = 0
