"""Gemini's sustained conditions on the machine's Redis: an alert once the condition has held,
without a break, for its minutes; a break starts the clock again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tasks.control.alerts import Alert, _gemini
from tasks.coordination.ratelimit import WindowUsage
from tasks.coordination.redis_keys import RedisKeys
from tasks.settings import Settings

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class Plane:
    """What the Gemini conditions read of the control plane: settings, Redis, its keys."""

    settings: Settings
    redis: redis.Redis

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.settings.redis_key_prefix)


@pytest.fixture
def plane(redis_prefix: str, redis_client: redis.Redis) -> Plane:
    return Plane(Settings(_env_file=None, redis_key_prefix=redis_prefix), redis_client)


def usage(requests: int = 0, tokens: int = 0, paused_for_s: float = 0) -> WindowUsage:
    return WindowUsage(
        requests=requests,
        tokens=tokens,
        max_requests=1000,
        max_tokens=1_000_000,
        paused_for_s=paused_for_s,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_usage_above_the_share_is_said_after_it_held_its_minutes(plane: Plane):
    busy = usage(requests=850)  # 85 % of RPM, over the 80 % share
    assert _gemini(plane, busy, at(0)) == []
    assert _gemini(plane, busy, at(14)) == []
    (raised,) = _gemini(plane, busy, at(15))
    assert raised.alert is Alert.GEMINI_BUSY and "85 %" in raised.message
    assert raised.numbers == {"minutes": 15, "share": 0.85}


def test_a_moment_below_the_share_starts_the_clock_again(plane: Plane):
    tokens = usage(tokens=900_000)  # TPM counts as much as RPM
    assert _gemini(plane, tokens, at(0)) == []
    assert _gemini(plane, usage(requests=100), at(10)) == []
    assert _gemini(plane, tokens, at(12)) == []
    assert _gemini(plane, tokens, at(26)) == []
    assert [r.alert for r in _gemini(plane, tokens, at(27))] == [Alert.GEMINI_BUSY]


def test_a_pause_for_quota_is_said_after_its_minutes(plane: Plane):
    paused = usage(paused_for_s=30)
    assert _gemini(plane, paused, at(0)) == []
    (raised,) = _gemini(plane, paused, at(10))
    assert raised.alert is Alert.GEMINI_PAUSED and "paused for quota" in raised.message
