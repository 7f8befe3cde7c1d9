from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import pgrst
from .plan import Plan, aggregate, json_body, rows_response, single_check
from .query import where
from .schema import Function, SchemaCache, Table

__all__ = ["Rest"]


class Rest:
    """The PostgREST subset supabase-py uses, translated to SQL on a real database."""

    def __init__(self, pool: AsyncConnectionPool, schema: str = "public") -> None:
        self.pool = pool
        self.cache = SchemaCache(schema)

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/rpc/{fn}", self.rpc, methods=["GET", "POST", "HEAD"]),
            Route("/{table}", self.read, methods=["GET", "HEAD"]),
            Route("/{table}", self.insert, methods=["POST"]),
            Route("/{table}", self.update, methods=["PATCH"]),
            Route("/{table}", self.delete, methods=["DELETE"]),
        ]

    async def root(self, request: Request) -> Response:
        await self.cache.reload(self.pool)
        return JSONResponse(
            {"tables": sorted(self.cache.tables), "functions": sorted(self.cache.functions)}
        )

    def _check_profile(self, request: Request) -> None:
        for header in ("accept-profile", "content-profile"):
            wanted = request.headers.get(header)
            if wanted and wanted != self.cache.schema:
                exposed = f"Only the following schemas are exposed: {self.cache.schema}"
                raise pgrst(406, "PGRST106", f"Invalid schema: {wanted}", hint=exposed)

    async def _table(self, request: Request, plan: Plan) -> Table:
        self._check_profile(request)
        name = request.path_params["table"]
        table = await self.cache.table(self.pool, name)
        if table is None:
            message = f"Could not find the table '{self.cache.schema}.{name}' in the schema cache"
            raise pgrst(404, "PGRST205", message)
        table = await self.cache.table_with(self.pool, name, plan.columns())
        missing = sorted(plan.columns() - set(table.columns))
        if missing:
            raise pgrst(400, "42703", f"column {name}.{missing[0]} does not exist")
        return table

    def _target(self, table: Table) -> sql.Composable:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.cache.schema), sql.Identifier(table.name)
        )

    def _source(self, table: Table) -> sql.Composable:
        return sql.SQL("{} AS _t").format(self._target(table))

    async def read(self, request: Request) -> Response:
        plan = Plan.parse(request)
        table = await self._table(request, plan)
        return await self._select(request, plan, self._source(table))

    async def _select(
        self,
        request: Request,
        plan: Plan,
        source: sql.Composable,
        params: list[Any] | None = None,
        read_only: bool = True,
    ) -> Response:
        query, where_params = plan.query(source)
        async with self.pool.connection() as conn:
            if read_only:
                await conn.execute("SET TRANSACTION READ ONLY")
            total, n, body = await _one(conn, query, [*(params or []), *where_params])
        lower, upper = plan.offset, plan.offset + n - 1
        status = 200
        if total is not None and lower > total:
            details = f"An offset of {lower} was requested, but there are only {total} rows."
            raise pgrst(416, "PGRST103", "Requested range not satisfiable", details)
        if total is not None and n < total:
            status = 206
        shown = f"{lower}-{upper}" if n else "*"
        content_range = f"{shown}/{'*' if total is None else total}"
        return rows_response(plan, n, body, status, content_range, request.method == "HEAD")

    async def _write(
        self, plan: Plan, query: sql.Composable, params: list[Any], status: int
    ) -> Response:
        async with self.pool.connection() as conn:
            _, n, body = await _one(conn, query, params)
            single_check(plan, n)
        content_range = f"*/{n if plan.wants_count else '*'}"
        if plan.minimal:
            headers = {"Content-Range": content_range}
            return Response(status_code=204 if status == 200 else status, headers=headers)
        return rows_response(plan, n, body, status, content_range)

    def _returning(self, plan: Plan, write: sql.Composable) -> sql.Composable:
        rows = sql.SQL("SELECT {} FROM _w AS _t").format(plan.projection())
        return sql.SQL("WITH _w AS ({}) {}").format(write, aggregate(rows))

    async def _body_columns(self, table: Table, columns: list[str]) -> Table:
        table = await self.cache.table_with(self.pool, table.name, set(columns))
        for column in columns:
            if column not in table.columns:
                message = (
                    f"Could not find the '{column}' column of '{table.name}' in the schema cache"
                )
                raise pgrst(400, "PGRST204", message)
        return table

    async def insert(self, request: Request) -> Response:
        plan = Plan.parse(request)
        table = await self._table(request, plan)
        body = await json_body(request)
        rows = body if isinstance(body, list) else [body]
        if not all(isinstance(row, dict) for row in rows):
            raise pgrst(
                400,
                "PGRST102",
                "Empty or invalid json",
                "Expected an object or an array of objects",
            )
        if "columns" in request.query_params:
            columns = [c.strip().strip('"') for c in request.query_params["columns"].split(",")]
        else:
            columns = list(dict.fromkeys(key for row in rows for key in row))
        table = await self._body_columns(table, columns)
        target = self._target(table)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        picked = sql.SQL(", ").join(sql.SQL("_p.{}").format(sql.Identifier(c)) for c in columns)
        # json_populate_recordset coerces JSON to the column types, as PostgREST does.
        write = sql.SQL(
            "INSERT INTO {target} AS _t {names} SELECT {picked} "
            "FROM json_populate_recordset(NULL::{target}, %s) AS _p {conflict} RETURNING _t.*"
        ).format(
            target=target,
            names=sql.SQL("({})").format(names) if columns else sql.SQL(""),
            picked=picked,
            conflict=self._conflict(request, plan, table, columns),
        )
        return await self._write(plan, self._returning(plan, write), [Json(rows)], 201)

    def _conflict(
        self, request: Request, plan: Plan, table: Table, columns: list[str]
    ) -> sql.Composable:
        resolution = plan.prefer.get("resolution")
        if resolution not in ("merge-duplicates", "ignore-duplicates"):
            return sql.SQL("")
        given = request.query_params.get("on_conflict")
        keys = (
            [k.strip().strip('"') for k in given.split(",")] if given else list(table.primary_key)
        )
        unknown = [k for k in keys if k not in table.columns]
        if unknown:
            raise pgrst(400, "42703", f"column {table.name}.{unknown[0]} does not exist")
        if not keys:
            return sql.SQL(" ON CONFLICT DO NOTHING")
        target = sql.SQL(", ").join(map(sql.Identifier, keys))
        updates = [c for c in columns if c not in keys]
        if resolution == "ignore-duplicates" or not updates:
            return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(target)
        sets = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
        )
        return sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(target, sets)

    async def update(self, request: Request) -> Response:
        plan = Plan.parse(request)
        table = await self._table(request, plan)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise pgrst(400, "PGRST102", "Empty or invalid json", "Expected a JSON object")
        _require_filter(plan, "UPDATE")
        columns = list(body)
        table = await self._body_columns(table, columns)
        if not columns:
            return await self._select(request, plan, self._source(table), read_only=False)
        target = self._target(table)
        condition, params = _where(plan)
        write = sql.SQL(
            "UPDATE {} AS _t SET ({}) = (SELECT {} FROM json_populate_record(NULL::{}, %s) AS _p) "
            "WHERE {} RETURNING _t.*"
        ).format(
            target,
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.SQL("_p.{}").format(sql.Identifier(c)) for c in columns),
            target,
            condition,
        )
        return await self._write(plan, self._returning(plan, write), [Json(body), *params], 200)

    async def delete(self, request: Request) -> Response:
        plan = Plan.parse(request)
        table = await self._table(request, plan)
        _require_filter(plan, "DELETE")
        target = self._target(table)
        condition, params = _where(plan)
        write = sql.SQL("DELETE FROM {} AS _t WHERE {} RETURNING _t.*").format(target, condition)
        return await self._write(plan, self._returning(plan, write), params, 200)

    async def rpc(self, request: Request) -> Response:
        self._check_profile(request)
        name = request.path_params["fn"]
        if request.method == "POST":
            body = await json_body(request)
            args = {} if body is None else body
            if not isinstance(args, dict):
                raise pgrst(400, "PGRST102", "Empty or invalid json", "Expected a JSON object")
            plan = Plan.parse(request)
        else:
            known = {n for fn in self.cache.functions.get(name, []) for n in fn.arg_names}
            if not known:
                await self.cache.reload(self.pool)
                known = {n for fn in self.cache.functions.get(name, []) for n in fn.arg_names}
            args = {k: v for k, v in request.query_params.items() if k in known}
            plan = Plan.parse(request, skip=frozenset(args))
        fn = await self.cache.function(self.pool, name, set(args))
        if fn is None:
            raise _no_function(self.cache.schema, name, sorted(args))
        source, params = self._call(fn, args)
        if fn.returns_set and fn.returns_rows:
            return await self._select(request, plan, source, params, request.method != "POST")
        if fn.returns_void:
            query: sql.Composable = sql.SQL("SELECT FROM {}").format(source)
        elif fn.returns_set:
            query = sql.SQL("SELECT coalesce(json_agg(_t), '[]')::text FROM {}").format(source)
        else:
            query = sql.SQL("SELECT to_json(_t)::text FROM {}").format(source)
        async with self.pool.connection() as conn:
            if request.method != "POST":
                await conn.execute("SET TRANSACTION READ ONLY")
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        if fn.returns_void:
            return Response(status_code=204)
        body_text = "null" if row is None or row[0] is None else row[0]
        return Response(body_text, 200, media_type="application/json; charset=utf-8")

    def _call(self, fn: Function, args: dict[str, Any]) -> tuple[sql.Composable, list[Any]]:
        name = sql.SQL("{}.{}").format(sql.Identifier(self.cache.schema), sql.Identifier(fn.name))
        if not args:
            return sql.SQL("{}() AS _t").format(name), []
        types = dict(zip(fn.arg_names, fn.arg_types, strict=False))
        defs = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(types[a])) for a in args
        )
        call = sql.SQL(", ").join(sql.SQL("{0} => _a.{0}").format(sql.Identifier(a)) for a in args)
        source = sql.SQL("json_to_record(%s) AS _a({}) CROSS JOIN LATERAL {}({}) AS _t").format(
            defs, name, call
        )
        return source, [Json(args)]


async def _one(conn: AsyncConnection, query: sql.Composable, params: list[Any]) -> Any:
    cur = await conn.execute(query, params)
    return await cur.fetchone()


def _where(plan: Plan) -> tuple[sql.Composable, list[Any]]:
    return where(plan.filters)


def _require_filter(plan: Plan, verb: str) -> None:
    # Supabase runs PostgREST with pg-safeupdate: a write without a WHERE clause is refused.
    if not plan.filters:
        raise pgrst(400, "21000", f"{verb} requires a WHERE clause")


def _no_function(schema: str, name: str, args: list[str]) -> Exception:
    listed = f"({', '.join(args)})" if args else " without parameters"
    searched = f"with parameters {', '.join(args)}" if args else "without parameters"
    return pgrst(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}{listed} in the schema cache",
        f"Searched for the function {schema}.{name} {searched} or with a single unnamed "
        "json/jsonb parameter, but no matches were found in the schema cache.",
    )
