from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.common import this_host_registered
from sandbox.registry.catalogue import ACCOUNTS
from tasks.settings import get_settings

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One throwaway Prefect server (SQLite) for every flow test: starting one costs ~20 s."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class Pipeline:
    """The whole system pointed at the stand-ins: Supabase (prod), the registry, Gemini, Redis."""

    project: Any
    registry: str
    gemini: str

    def insert(self, source: str, **columns: Any) -> str:
        values = {"document_source": source, **columns}
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        rows = self.project.sql(
            f"INSERT INTO extraction_queue ({names}) VALUES ({marks}) RETURNING id",
            tuple(values.values()),
        )
        return str(rows[0][0])

    def row(self, job_id: str) -> dict[str, Any]:
        with_names = self.project.sql(
            "SELECT to_jsonb(q) FROM extraction_queue q WHERE id = %s", (job_id,)
        )
        return with_names[0][0]

    def download(self, path: str) -> bytes:
        from tasks.queue import Queue
        from tasks.storage import Storage

        return Storage(Queue(get_settings()).client("prod")).download(path, "index")


@pytest.fixture
def pipeline(
    prefect_api: None,
    monkeypatch: pytest.MonkeyPatch,
    supabase_projects: dict[str, Any],
    registry: str,
    gemini_api: str,
    redis_prefix: str,
    gemini_key: str,
) -> Iterator[Pipeline]:
    prod = supabase_projects["prod"]
    env = {
        "PROD_SUPABASE_URL": prod.url,
        "PROD_SUPABASE_SERVICE_KEY": prod.service_key,
        "REGISTRY_BASE_URL": registry,
        "GEMINI_BASE_URL": gemini_api,
        "GEMINI_API_KEY": gemini_key,
        "REDIS_KEY_PREFIX": redis_prefix,
        "QUEUE_LEASE_SECONDS": "60",
        "GEMINI_MAX_ATTEMPTS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    for account in ACCOUNTS:
        prod.sql(
            "INSERT INTO worker_accounts (username, password, is_active) VALUES (%s, %s, %s)",
            (account.username, account.password, account.active),
        )
    with this_host_registered(get_settings()):
        yield Pipeline(prod, registry, gemini_api)
    get_settings.cache_clear()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
