"""Where settings become clients, once per process or run: each service gets the few values it
needs, and the library modules never read settings themselves."""

from __future__ import annotations

import redis

from tasks.coordination.capacity.budget import Budget, Cost, WorkerKind, host_budget
from tasks.coordination.capacity.leases import CapacityManager
from tasks.coordination.ratelimit import GeminiLimiter
from tasks.settings import Settings

__all__ = ["capacity_manager", "cost_table", "gemini_limiter", "redis_client", "settings_budget"]


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
