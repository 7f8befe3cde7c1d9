from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError, from_pg
from .objects import ObjectStore
from .rest import Rest
from .storage import Storage

__all__ = ["POOL_MAX_SIZE", "create_app"]

logger = logging.getLogger(__name__)

POOL_MAX_SIZE = 16  # connections, one per concurrent client the workers run
POOL_TIMEOUT_S = 30.0
# Storage serves these without a key: the token or the bucket's public flag is the permission.
_OPEN_READS = ("/storage/v1/object/sign/", "/storage/v1/object/public/")
_OPEN_UPLOADS = "/storage/v1/object/upload/sign/"


def _unauthorized(message: str, hint: str) -> Response:
    # The shape Supabase's API gateway answers with, before PostgREST or Storage see the request.
    return JSONResponse({"message": message, "hint": hint}, status_code=401)


def _check_key(request: Request, service_key: str) -> Response | None:
    path = request.url.path
    if request.method in ("GET", "HEAD") and path.startswith(_OPEN_READS):
        return None
    if request.method == "PUT" and path.startswith(_OPEN_UPLOADS):
        return None
    apikey = request.headers.get("apikey") or request.query_params.get("apikey")
    if apikey is None:
        return _unauthorized(
            "No API key found in request", "No `apikey` request header or url param was found."
        )
    bearer = request.headers.get("authorization", "")
    expected = f"Bearer {service_key}"
    if not (
        hmac.compare_digest(apikey.encode(), service_key.encode())
        and hmac.compare_digest(bearer.encode(), expected.encode())
    ):
        return _unauthorized(
            "Invalid API key", "Double check your Supabase `anon` or `service_role` API key."
        )
    return None


class _KeyCheck:
    def __init__(self, app: ASGIApp, service_key: str) -> None:
        self.app = app
        self.service_key = service_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = _check_key(Request(scope), self.service_key)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(dsn: str, service_key: str, storage_dir: Path) -> Starlette:
    pool = AsyncConnectionPool(
        dsn,
        min_size=2,
        max_size=POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT_S,
        kwargs={"options": "-c timezone=UTC", "application_name": "sandbox-supabase"},
        open=False,
    )
    rest = Rest(pool)
    storage = Storage(ObjectStore(storage_dir), service_key)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        await rest.cache.reload(pool)
        try:
            yield
        finally:
            await pool.close()

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def pg_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, psycopg.Error)
        error = from_pg(exc)
        if error.status >= 500:
            logger.warning("database error %s: %s", exc.sqlstate, error.body["message"])
        return error.response()

    return Starlette(
        routes=[Mount("/rest/v1", routes=rest.routes), Mount("/storage/v1", routes=storage.routes)],
        middleware=[Middleware(_KeyCheck, service_key=service_key)],
        lifespan=lifespan,
        exception_handlers={ApiError: api_error, psycopg.Error: pg_error},
    )
