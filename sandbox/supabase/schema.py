from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

__all__ = ["Function", "SchemaCache", "Table"]

_TABLES = """
SELECT c.relname, a.attname, coalesce(a.attnum = ANY (i.indkey), false)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
 WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
 ORDER BY c.relname, a.attnum
"""

# One row per overload: argument names and modes, input types, how many inputs have defaults,
# and the return shape.
_FUNCTIONS = """
SELECT p.proname,
       coalesce(p.proargnames, '{}'),
       coalesce(p.proargmodes::text[], '{}'),
       coalesce(array(
           SELECT format_type(t, NULL)
             FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, k)
            ORDER BY k), '{}'),
       p.pronargdefaults,
       p.proretset,
       p.prorettype = 'void'::regtype,
       t.typtype IN ('c', 'p')
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_type t ON t.oid = p.prorettype
 WHERE n.nspname = %s AND p.prokind IN ('f', 'p')
"""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class Function:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    n_defaults: int
    returns_set: bool
    returns_void: bool
    returns_rows: bool

    def accepts(self, given: set[str]) -> bool:
        required = set(self.arg_names[: len(self.arg_names) - self.n_defaults])
        return required <= given <= set(self.arg_names)


@dataclass
class SchemaCache:
    """The tables and functions of one schema, reloaded when a request names something unknown."""

    schema: str
    tables: dict[str, Table] = field(default_factory=dict)
    functions: dict[str, list[Function]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self, pool: AsyncConnectionPool) -> None:
        async with self._lock, pool.connection() as conn:
            self.tables = await _load_tables(conn, self.schema)
            self.functions = await _load_functions(conn, self.schema)

    async def table(self, pool: AsyncConnectionPool, name: str) -> Table | None:
        if name not in self.tables:
            await self.reload(pool)
        return self.tables.get(name)

    async def table_with(self, pool: AsyncConnectionPool, name: str, columns: set[str]) -> Table:
        """The table, reloaded once if it lacks one of `columns` (a migration may add it)."""
        table = self.tables[name]
        if columns <= set(table.columns):
            return table
        await self.reload(pool)
        return self.tables.get(name, table)

    async def function(
        self, pool: AsyncConnectionPool, name: str, given: set[str]
    ) -> Function | None:
        for attempt in range(2):
            for fn in self.functions.get(name, []):
                if fn.accepts(given):
                    return fn
            if attempt == 0:
                await self.reload(pool)
        return None


async def _load_tables(conn: AsyncConnection, schema: str) -> dict[str, Table]:
    columns: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    cur = await conn.execute(_TABLES, [schema])
    for table, column, in_key in await cur.fetchall():
        if column in columns.setdefault(table, []):
            continue
        columns[table].append(column)
        if in_key:
            keys.setdefault(table, []).append(column)
    return {
        name: Table(name, tuple(cols), tuple(keys.get(name, ()))) for name, cols in columns.items()
    }


async def _load_functions(conn: AsyncConnection, schema: str) -> dict[str, list[Function]]:
    functions: dict[str, list[Function]] = {}
    cur = await conn.execute(_FUNCTIONS, [schema])
    for name, names, modes, types, n_defaults, retset, void, rows in await cur.fetchall():
        modes = modes or ["i"] * len(types)
        inputs = [n for n, mode in zip(names, modes, strict=False) if mode in ("i", "b", "v")]
        inputs += [""] * (len(types) - len(inputs))
        functions.setdefault(name, []).append(
            Function(name, tuple(inputs), tuple(types), n_defaults, retset, void, rows)
        )
    return functions
