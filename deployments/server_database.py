"""The Prefect server's database when it is PostgreSQL (Prefect's own
PREFECT_API_DATABASE_CONNECTION_URL): made ready before `registre up` starts the server, so that a
missing database or extension is one clear error instead of a server dying in its migrations."""

from __future__ import annotations

import psycopg
from psycopg import errors, sql
from sqlalchemy.engine import URL, make_url  # Prefect's own dependency

from tasks.failures import ConfigError

DRIVER = "postgresql+asyncpg"  # the only PostgreSQL driver Prefect's server runs on
URL_VARIABLES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


def configured_url(environ: dict[str, str]) -> URL | None:
    """The server's PostgreSQL URL from the environment it will start with; None for SQLite."""
    for name in URL_VARIABLES:
        if environ.get(name):
            url = make_url(environ[name])
            break
    else:
        return None
    if url.get_backend_name() != "postgresql":
        return None
    if url.drivername != DRIVER:
        raise ConfigError(
            f"the Prefect server's database URL {url!r} uses driver {url.drivername!r}: Prefect's"
            f" server needs {DRIVER}:// (e.g. {DRIVER}://user:password@host:5432/prefect)"
        )
    if not url.database:
        raise ConfigError(f"the Prefect server's database URL {url!r} names no database")
    return url


def connect(url: URL, database: str) -> psycopg.Connection:
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=database,
        autocommit=True,
        connect_timeout=10,
    )


def connect_or_create(url: URL) -> psycopg.Connection:
    """A connection to the database, made first when it does not exist (a server of one's own);
    libpq's error carries no SQLSTATE then, so the catalogue says whether it exists."""
    try:
        return connect(url, url.database)
    except psycopg.OperationalError as refused:
        try:
            admin = connect(url, "postgres")
        except psycopg.Error:
            raise refused from None
        with admin:
            if admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
            ).fetchone():
                raise refused from None  # it exists: the first error is the one to show
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
        return connect(url, url.database)


def prepare(url: URL) -> None:
    """The database, and `pg_trgm`, which Prefect's migrations create but a role without the
    right cannot: say who must."""
    shown = url.render_as_string(hide_password=True)
    try:
        conn = connect_or_create(url)
    except psycopg.Error as exc:
        raise ConfigError(
            f"the Prefect server's database {shown} cannot be reached or created:"
            f" {type(exc).__name__}: {str(exc).strip()}"
        ) from None
    with conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except errors.InsufficientPrivilege:
            raise ConfigError(
                f"the Prefect server needs the pg_trgm extension in {shown}, and"
                f" {url.username!r} may not create it: have the database's owner run"
                " `CREATE EXTENSION pg_trgm;` in it once"
            ) from None
