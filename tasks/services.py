"""Where settings become clients, once per process or run: each service gets the few values it
needs, and the library modules never read settings themselves."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import redis
import redis.asyncio

from tasks.coordination.capacity.budget import Budget, Cost, WorkerKind, host_budget
from tasks.coordination.capacity.leases import CapacityManager
from tasks.coordination.ratelimit import GeminiLimiter
from tasks.registry.config import RegistryConfig
from tasks.settings import Settings

if TYPE_CHECKING:
    from tasks.queue.table import Queue
    from tasks.registry.accounts import AccountPool

__all__ = [
    "account_pool",
    "async_redis_client",
    "capacity_manager",
    "cost_table",
    "gemini_limiter",
    "redis_client",
    "registry_config",
    "settings_budget",
]


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def async_redis_client(settings: Settings) -> redis.asyncio.Redis:
    """For the registry's session store, which lives on the download's event loop."""
    return redis.asyncio.Redis.from_url(settings.redis_url)


def registry_config(settings: Settings) -> RegistryConfig:
    return RegistryConfig(base_url=settings.registry_base_url, headless=settings.browser_headless)


def account_pool(settings: Settings, queue: Queue, owner: str) -> AccountPool:
    """The registry accounts, checked out by `owner`. One set for every environment, in
    `registry_accounts_environment` or the first enabled one, so that two runs never share a
    login; called through the queue, under its retry policy."""
    # imported here: the registry's errors load Playwright, which only a registre run may pay
    # for (tests/unit/test_stage_imports.py), and every run imports this module
    from tasks.registry.accounts import AccountPool

    env = settings.registry_accounts_environment or settings.environments()[0].name
    return AccountPool(partial(queue.rpc, env), owner=owner)


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


def cost_table(settings: Settings) -> dict[WorkerKind, Cost]:
    return {
        WorkerKind.REGISTRE: Cost(settings.cost_registre_cpu, settings.cost_registre_ram),
        WorkerKind.INDEX_OCR: Cost(settings.cost_index_ocr_cpu, settings.cost_index_ocr_ram),
        WorkerKind.ACTE_OCR: Cost(settings.cost_acte_ocr_cpu, settings.cost_acte_ocr_ram),
    }


def settings_budget(settings: Settings) -> Budget:
    return host_budget(
        settings.server_max_cpu,
        settings.server_max_ram,
        settings.server_reserve_cpu_percent,
        settings.server_reserve_ram_percent,
    )
