"""Which Prefect server database `registre up` prepares, from the URL the operator gave."""

from __future__ import annotations

import pytest

from deployments.server_database import configured_url
from tasks.failures import ConfigError


def test_no_url_or_sqlite_is_left_to_prefect():
    assert configured_url({}) is None
    assert (
        configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///x.db"}) is None
    )


def test_a_postgresql_url_under_either_of_prefects_names_is_prepared():
    url = "postgresql+asyncpg://prefect:s3cret@db.example:5433/prefect"
    for name in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        found = configured_url({name: url})
        assert (found.host, found.port, found.database, found.password) == (
            "db.example",
            5433,
            "prefect",
            "s3cret",
        )


def test_a_driver_prefect_cannot_use_is_refused_without_showing_the_password():
    with pytest.raises(ConfigError, match=r"needs postgresql\+asyncpg://") as refused:
        configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql://u:s3cret@h/prefect"})
    assert "s3cret" not in str(refused.value)


def test_a_url_without_a_database_is_refused():
    with pytest.raises(ConfigError, match="names no database"):
        configured_url({"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@h:5432"})
