from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from redis.asyncio import Redis
from supabase import create_client

from sandbox.registry import control
from sandbox.registry.catalogue import ACCOUNTS
from sandbox.supabase import serve as serve_supabase
from tasks.registry.accounts import AccountPool
from tasks.registry.browser import BrowserHost
from tasks.registry.config import RegistryConfig
from tasks.registry.session import SessionStore

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T = TypeVar("T")


@dataclass
class Harness:
    """Everything download_document needs, pointed at the stand-ins."""

    base_url: str
    supabase_url: str
    service_key: str
    dsn: str
    redis_prefix: str
    evidence_dir: Path
    config: RegistryConfig

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def add_account(self, username: str, password: str, *, last_used: str | None = None) -> str:
        rows = self.sql(
            "INSERT INTO worker_accounts (username, password, last_used)"
            " VALUES (%s, %s, %s::timestamptz) RETURNING id",
            (username, password, last_used),
        )
        return str(rows[0][0])

    def account(self, username: str) -> dict[str, Any]:
        cols = ("id", "failure_count", "last_used", "checkout_owner")
        rows = self.sql(
            f"SELECT {', '.join(cols)} FROM worker_accounts WHERE username = %s", (username,)
        )
        return dict(zip(cols, rows[0], strict=True))

    def pool(self, owner: str | None = None) -> AccountPool:
        client = create_client(self.supabase_url, self.service_key)

        def rpc(function: str, params: dict[str, Any], repeatable: bool = True) -> Any:
            # made once, whatever `repeatable` says: no retry policy here
            return client.rpc(function, params).execute().data

        return AccountPool(rpc, owner=owner or f"test-{uuid.uuid4().hex[:8]}")

    def sessions(self) -> SessionStore:
        return SessionStore(Redis.from_url(TEST_REDIS_URL), prefix=self.redis_prefix)

    def counters(self) -> dict[str, Any]:
        return control.counters(self.base_url)


@pytest.fixture
def harness(registry: str, pg_dsn: str, redis_prefix: str, tmp_path: Path) -> Iterator[Harness]:
    service_key = f"test-service-{secrets.token_hex(12)}"
    with serve_supabase(pg_dsn, service_key, tmp_path / "storage") as supabase_url:
        config = RegistryConfig(
            base_url=registry,
            first_selector_timeout_s=15,
            document_load_timeout_s=30,
            download_timeout_s=8,
            save_link_timeout_s=10,
            document_poll_interval_s=0.2,
        )
        harness = Harness(
            registry,
            supabase_url,
            service_key,
            pg_dsn,
            redis_prefix,
            tmp_path / "evidence",
            config,
        )
        for account in ACCOUNTS:
            if account.active:
                harness.add_account(account.username, account.password)
        yield harness


@pytest.fixture
def run() -> Iterator[Callable[[Callable[[BrowserHost], Awaitable[T]]], T]]:
    """Run a coroutine (given a fresh BrowserHost) on a new event loop, closing the browser."""

    def runner(make: Callable[[BrowserHost], Awaitable[T]]) -> T:
        async def main() -> T:
            async with BrowserHost(headless=True) as host:
                return await make(host)

        return asyncio.run(main())

    yield runner
