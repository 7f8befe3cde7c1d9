from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import hypothesis
import psycopg
import pytest
import redis

from sandbox.postgres import create_database, drop_database
from tasks.queue.statuses import NAMES
from tasks.settings import Settings, load_settings

BENCH = Path(__file__).resolve().parent.parent / "bench"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Nothing from an operator's shell or .env may leak into a test.
for name in list(os.environ):
    if name.endswith(("_SUPABASE_URL", "_SUPABASE_SERVICE_KEY", "_DAILY_BUDGET_USD")) or (
        name.startswith(("GEMINI_", "ALERT_"))
    ):
        del os.environ[name]
# Generating examples slows with the machine's load, which is not what a property test checks.
hypothesis.settings.register_profile(
    "registre", suppress_health_check=[hypothesis.HealthCheck.too_slow], deadline=None
)
hypothesis.settings.load_profile("registre")


@pytest.fixture(scope="session")
def bench_module() -> Callable[[str], ModuleType]:
    """Imports a benchmark by its file name (bench/NAME.py): the benchmarks import each other
    that way, so bench/ is on the path while it loads."""

    def load(name: str) -> ModuleType:
        sys.path.insert(0, str(BENCH))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCH))

    return load


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL database with the schema applied, dropped afterwards."""
    dsn = create_database()
    try:
        yield dsn
    finally:
        drop_database(dsn)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the machine's Redis; its keys are deleted afterwards."""
    prefix = f"rftest:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass(frozen=True)
class SupabaseProject:
    """One environment's Supabase: the stand-in's URL and key over its own PostgreSQL database."""

    url: str
    service_key: str
    dsn: str
    storage_dir: Path  # where the stand-in keeps the objects of Storage

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@contextmanager
def supabase_project(storage_dir: Path) -> Iterator[SupabaseProject]:
    from sandbox.supabase import serve

    dsn = create_database()
    key = f"test-service-key-{uuid.uuid4().hex}"
    try:
        with serve(dsn, key, storage_dir) as url:
            yield SupabaseProject(url, key, dsn, storage_dir)
    finally:
        drop_database(dsn)


@pytest.fixture(scope="session")
def _supabase_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, SupabaseProject]]:
    root = tmp_path_factory.mktemp("supabase")
    with supabase_project(root / "prod") as prod, supabase_project(root / "dev") as dev:
        yield {"prod": prod, "dev": dev}


@pytest.fixture
def supabase_projects(_supabase_pair: dict[str, SupabaseProject]) -> dict[str, SupabaseProject]:
    """Two environments (prod and dev), each a Supabase stand-in over its own database, emptied
    for each test (the servers are shared by the session: starting them costs seconds)."""
    for project in _supabase_pair.values():
        project.sql("TRUNCATE extraction_queue, worker_accounts")
        project.sql("DELETE FROM extraction_status")
        for status_id, name in NAMES["seed"].items():
            project.sql("INSERT INTO extraction_status VALUES (%s, %s)", (status_id, name))
    return _supabase_pair


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings for the given projects, ignoring the operator's environment and .env."""

    def make(projects: dict[str, SupabaseProject], **overrides: Any) -> Settings:
        values: dict[str, Any] = {"_env_file": None, **overrides}
        for env, project in projects.items():
            values[f"{env}_supabase_url"] = project.url
            values[f"{env}_supabase_service_key"] = project.service_key
        return load_settings(**values)

    return make


@pytest.fixture
def staging_project(tmp_path: Path) -> Iterator[SupabaseProject]:
    """A third environment's Supabase, for the test that needs it (starting one costs seconds)."""
    with supabase_project(tmp_path / "staging") as project:
        yield project


@pytest.fixture(scope="session")
def registry_site() -> Iterator[str]:
    """The registry stand-in (base URL; the site is under /Sirf/), one for the session."""
    from sandbox.registry import serve

    with serve() as base_url:
        yield base_url


@pytest.fixture
def registry(registry_site: str) -> str:
    """The registry stand-in with no faults, no open sessions and zeroed counters."""
    from sandbox.registry import control

    control.reset_faults(registry_site)
    control.expire_sessions(registry_site)
    control.reset_counters(registry_site)
    return registry_site


GEMINI_TEST_KEY = "test-gemini-key-not-secret"


@pytest.fixture(scope="session")
def gemini_site() -> Iterator[str]:
    """The Gemini stand-in, knowing the registry catalogue's documents, one for the session."""
    from sandbox import gemini

    with gemini.serve(GEMINI_TEST_KEY, rpm=10_000, tpm=100_000_000) as url:
        yield url


@pytest.fixture
def gemini_key() -> str:
    return GEMINI_TEST_KEY


@pytest.fixture
def gemini_api(gemini_site: str) -> str:
    """The Gemini stand-in with fresh counters, no faults and no uploaded files."""
    httpx.post(f"{gemini_site}/_sandbox/reset").raise_for_status()
    return gemini_site
