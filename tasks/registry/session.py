from __future__ import annotations

import json
import logging
from typing import Any

from redis.asyncio import Redis

from tasks.coordination.redis_keys import RedisKeys

__all__ = ["SessionStore"]

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 15 * 60  # the site's sessions last about 20 min


async def _redis_now(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return seconds + micros / 1_000_000


class SessionStore:
    """Each account's logged-in browser state (Playwright storage_state) in Redis, shared by every
    process and host, so that a document does not cost a login. The state is a secret (it holds the
    session cookies): it is never logged."""

    def __init__(self, redis: Redis, *, prefix: str = "", ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self.prefix = prefix
        self._keys = RedisKeys(prefix)
        self.ttl_s = ttl_s

    async def _now(self) -> float:
        return await _redis_now(self._redis)

    def __repr__(self) -> str:
        return f"SessionStore(prefix={self.prefix!r}, ttl_s={self.ttl_s})"

    async def load(self, account_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.registre_session(account_id))
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
        now = await self._now()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.registre_session(account_id), json.dumps(state), ex=self.ttl_s)
            pipe.zadd(self._keys.registre_sessions, {account_id: now + self.ttl_s})
            await pipe.execute()
        logger.debug("session stored", extra={"action": "store_session", "account_id": account_id})

    async def live_accounts(self) -> list[str]:
        """Accounts that have a stored session, so that a checkout can prefer them."""
        index = self._keys.registre_sessions
        await self._redis.zremrangebyscore(index, "-inf", await self._now())
        members = await self._redis.zrange(index, 0, -1)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def drop(self, account_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.registre_session(account_id))
            pipe.zrem(self._keys.registre_sessions, account_id)
            await pipe.execute()
        logger.info("session dropped", extra={"action": "drop_session", "account_id": account_id})
