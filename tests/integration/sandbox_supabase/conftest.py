from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from supabase import Client, create_client

from sandbox.supabase import serve


@dataclass(frozen=True)
class StandIn:
    url: str
    service_key: str
    dsn: str
    storage_dir: Path


@pytest.fixture
def supabase_standin(pg_dsn: str, tmp_path: Path) -> Iterator[StandIn]:
    """The Supabase stand-in serving a throwaway database with the migrations applied."""
    service_key = f"sandbox-service-{secrets.token_hex(16)}"
    storage_dir = tmp_path / "storage"
    with serve(pg_dsn, service_key, storage_dir) as url:
        yield StandIn(url, service_key, pg_dsn, storage_dir)


@pytest.fixture
def client(supabase_standin: StandIn) -> Client:
    return create_client(supabase_standin.url, supabase_standin.service_key)
