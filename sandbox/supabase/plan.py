from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response

from .errors import pgrst
from .query import (
    LOGIC_KEYS,
    RESERVED,
    Column,
    Filter,
    Group,
    Order,
    parse_filter,
    parse_group,
    parse_order,
    parse_select,
    where,
)

__all__ = ["Plan", "json_body", "single_check"]

SINGLE = "application/vnd.pgrst.object+json"
_RANGE = re.compile(r"^\s*(\d+)-(\d*)\s*$")


def _int(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise pgrst(400, "PGRST100", f'"failed to parse {name} ({text})" (line 1, column 1)')
    return int(text)


def parse_prefer(values: list[str]) -> dict[str, str]:
    prefer: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            key, _, setting = item.strip().partition("=")
            if key:
                prefer[key] = setting
    return prefer


@dataclass(frozen=True)
class Plan:
    """What a PostgREST request asks for, read from its query string and headers."""

    select: list[Column]
    filters: list[Filter | Group]
    order: list[Order]
    limit: int | None
    offset: int
    prefer: dict[str, str]
    single: bool

    @classmethod
    def parse(cls, request: Request, skip: frozenset[str] = frozenset()) -> Plan:
        params = request.query_params
        filters: list[Filter | Group] = []
        for key, value in params.multi_items():
            if key in RESERVED or key in skip:
                continue
            filters.append(
                parse_group(key, value) if key in LOGIC_KEYS else parse_filter(key, value)
            )
        limit = _int(params.get("limit"), "limit")
        offset = _int(params.get("offset"), "offset") or 0
        found = _RANGE.match(request.headers.get("range", ""))
        if found and limit is None and "offset" not in params:
            offset = int(found[1])
            limit = int(found[2]) - offset + 1 if found[2] else None
        accept = request.headers.get("accept", "").split(";")[0].strip()
        return cls(
            select=parse_select(params.get("select")),
            filters=filters,
            order=parse_order(params.get("order")),
            limit=limit,
            offset=offset,
            prefer=parse_prefer(request.headers.getlist("prefer")),
            single=accept == SINGLE,
        )

    def columns(self) -> set[str]:
        names = {c.name for c in self.select if c.name != "*"}
        for item in self.filters:
            names |= item.columns()
        return names | {o.column for o in self.order}

    def projection(self) -> sql.Composable:
        return sql.SQL(", ").join(c.sql() for c in self.select)

    def _page(self, rows: sql.Composable) -> sql.Composable:
        tail: list[sql.Composable] = []
        if self.order:
            orders = sql.SQL(", ").join(o.sql() for o in self.order)
            tail.append(sql.SQL("ORDER BY {}").format(orders))
        if self.limit is not None:
            tail.append(sql.SQL("LIMIT {}").format(sql.Literal(self.limit)))
        if self.offset:
            tail.append(sql.SQL("OFFSET {}").format(sql.Literal(self.offset)))
        return sql.SQL("SELECT {} FROM {} {}").format(
            self.projection(), rows, sql.SQL(" ").join(tail)
        )

    def query(self, source: sql.Composable) -> tuple[sql.Composable, list[Any]]:
        """The page asked for as `(total or NULL, n, json array text)`; `source` is aliased `_t`.

        With a count, the filtered rows are materialized once, so a function called in `source`
        (a claim, say) runs once however the page and the total are taken from it.
        """
        condition, params = where(self.filters)
        if not self.wants_count:
            rows = sql.SQL("{} WHERE {}").format(source, condition)
            return aggregate(self._page(rows)), params
        page = aggregate(self._page(sql.SQL("_all AS _t")), sql.SQL("(SELECT count(*) FROM _all)"))
        query = sql.SQL("WITH _all AS MATERIALIZED (SELECT _t.* FROM {} WHERE {}) {}").format(
            source, condition, page
        )
        return query, params

    @property
    def wants_count(self) -> bool:
        return self.prefer.get("count") in ("exact", "planned", "estimated")

    @property
    def minimal(self) -> bool:
        return self.prefer.get("return", "minimal") != "representation"


def aggregate(rows: sql.Composable, total: sql.Composable | None = None) -> sql.Composable:
    """`(total, n, json array text)` of `rows`."""
    return sql.SQL(
        "SELECT {}, count(*), coalesce(json_agg(_r), '[]')::text FROM ({}) AS _r"
    ).format(total or sql.SQL("NULL"), rows)


def single_check(plan: Plan, n: int) -> None:
    if plan.single and n != 1:
        raise pgrst(
            406,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
            f"The result contains {n} rows",
        )


def rows_response(
    plan: Plan, n: int, body: str, status: int, content_range: str, head: bool = False
) -> Response:
    single_check(plan, n)
    if plan.single:
        body = body.strip()[1:-1].strip()
        media = SINGLE
    else:
        media = "application/json"
    headers = {"Content-Range": content_range}
    content = b"" if head else body.encode()
    return Response(content, status, headers, media_type=f"{media}; charset=utf-8")


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise pgrst(400, "PGRST102", "Empty or invalid json", str(exc)) from exc
