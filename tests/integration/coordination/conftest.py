from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tasks.coordination.redis_keys import RedisKeys

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def keys(redis_prefix: str) -> RedisKeys:
    """The product's Redis keys under this test's own prefix."""
    return RedisKeys(redis_prefix)
