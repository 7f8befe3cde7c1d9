"""Where settings become clients, once per process or run: each service gets the few values it
needs, and the library modules never read settings themselves."""

from __future__ import annotations

import redis
from google import genai

from tasks.capacity.budget import cost_table
from tasks.capacity.leases import CapacityManager
from tasks.gemini.client import GeminiConfigError, shared_client
from tasks.gemini.generate import RetryPolicy
from tasks.ocr import GeminiCaller
from tasks.ratelimit import GeminiLimiter
from tasks.settings import Settings

__all__ = ["capacity_manager", "gemini_caller", "gemini_client", "gemini_limiter", "redis_client"]


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def capacity_manager(settings: Settings, client: redis.Redis) -> CapacityManager:
    return CapacityManager(
        client,
        costs=cost_table(settings),
        prefix=settings.redis_key_prefix,
        lease_s=settings.capacity_lease_seconds,
        host_ttl_s=settings.capacity_host_ttl_seconds,
    )


def gemini_limiter(settings: Settings, client: redis.Redis) -> GeminiLimiter:
    return GeminiLimiter(
        client,
        max_rpm=settings.gemini_max_rpm,
        max_tpm=settings.gemini_max_tpm,
        prefix=settings.redis_key_prefix,
    )


def gemini_client(settings: Settings) -> genai.Client:
    """The process's client for this configuration (GeminiConfigError without a key)."""
    key = settings.gemini_api_key
    if key is None or not key.get_secret_value():
        raise GeminiConfigError()
    return shared_client(
        key.get_secret_value(), settings.gemini_base_url, settings.gemini_timeout_seconds
    )


def gemini_caller(settings: Settings, client: redis.Redis) -> GeminiCaller:
    """What an OCR run calls Gemini with; `client` is the run's Redis, for the shared limiter."""
    return GeminiCaller(
        client=gemini_client(settings),
        limiter=gemini_limiter(settings, client),
        policy=RetryPolicy(
            max_attempts=settings.gemini_max_attempts, max_wait_s=settings.gemini_max_wait_seconds
        ),
        extract_model=settings.gemini_extract_model,
        boost_model=settings.gemini_boost_model,
    )
