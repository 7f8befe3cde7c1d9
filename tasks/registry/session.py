from __future__ import annotations

import json
import logging
from typing import Any

from redis.asyncio import Redis

__all__ = ["SessionStore", "session_key"]

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 15 * 60  # the site's sessions last about 20 min


def session_key(prefix: str, account_id: str) -> str:
    return f"{prefix}registre:session:{account_id}"


class SessionStore:
    """Each account's logged-in browser state (Playwright storage_state) in Redis, shared by every
    process and host, so that a document does not cost a login. The state is a secret (it holds the
    session cookies): it is never logged."""

    def __init__(self, redis: Redis, *, prefix: str = "", ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"SessionStore(prefix={self.prefix!r}, ttl_s={self.ttl_s})"

    async def load(self, account_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(session_key(self.prefix, account_id))
        if raw is None:
            return None
        try:
            state = json.loads(raw)
        except ValueError:
            await self.drop(account_id)
            return None
        return state if isinstance(state, dict) else None

    async def save(self, account_id: str, state: dict[str, Any]) -> None:
        """Store (or refresh, after a successful use) the state for another ttl_s seconds."""
        key = session_key(self.prefix, account_id)
        await self._redis.set(key, json.dumps(state), ex=self.ttl_s)
        logger.debug("session stored", extra={"action": "store_session", "account_id": account_id})

    async def drop(self, account_id: str) -> None:
        await self._redis.delete(session_key(self.prefix, account_id))
        logger.info("session dropped", extra={"action": "drop_session", "account_id": account_id})
