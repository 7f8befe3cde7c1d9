from __future__ import annotations

from typing import Any

import psycopg
from starlette.responses import JSONResponse

__all__ = [
    "ApiError",
    "from_pg",
    "pgrst",
    "storage_error",
]


class ApiError(Exception):
    """An error answered as JSON, with the body and HTTP status the real service uses."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def pgrst(
    status: int, code: str, message: str, details: str | None = None, hint: str | None = None
) -> ApiError:
    return ApiError(status, {"code": code, "details": details, "hint": hint, "message": message})


def storage_error(status_code: str, error: str, message: str, status: int = 400) -> ApiError:
    # Storage answers most errors with HTTP 400 and puts the meaningful code in the body.
    return ApiError(status, {"statusCode": status_code, "error": error, "message": message})


def _status_for(sqlstate: str) -> int:
    """PostgREST's SQLSTATE to HTTP status table (Error.hs, pgErrorStatus)."""
    exact = {
        "23503": 409, "23505": 409, "25006": 405, "53400": 500, "P0001": 400,
        "42883": 404, "42P01": 404, "42P17": 500, "42501": 403,
    }  # fmt: skip
    if sqlstate in exact:
        return exact[sqlstate]
    by_class = {
        "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500,
        "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500,
        "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500,
    }  # fmt: skip
    if sqlstate[:2] == "PT" and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return by_class.get(sqlstate[:2], 400)


def from_pg(exc: psycopg.Error) -> ApiError:
    if exc.sqlstate is None:
        # No SQLSTATE: the connection itself failed, which PostgREST reports as unavailable.
        return pgrst(503, "PGRST001", "Database client error. Retrying the connection.", str(exc))
    diag = exc.diag
    sqlstate = exc.sqlstate
    return pgrst(
        _status_for(sqlstate),
        sqlstate,
        diag.message_primary or str(exc),
        diag.message_detail,
        diag.message_hint,
    )
