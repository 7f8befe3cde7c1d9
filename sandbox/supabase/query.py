from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg import sql

from .errors import pgrst

__all__ = [
    "LOGIC_KEYS",
    "RESERVED",
    "Column",
    "Filter",
    "Group",
    "Order",
    "parse_filter",
    "parse_group",
    "parse_order",
    "parse_select",
    "where",
]

# Query parameters that are not filters.
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})

_OPERATORS = {
    "eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
    "like": "LIKE", "ilike": "ILIKE", "match": "~", "imatch": "~*",
    "cs": "@>", "cd": "<@", "ov": "&&", "isdistinct": "IS DISTINCT FROM",
}  # fmt: skip
_IS_VALUES = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE",
              "unknown": "UNKNOWN"}  # fmt: skip
_CAST = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*(\[\])?$")
_ALIAS = sql.Identifier("_t")


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside double quotes and parentheses, as PostgREST's parser does."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_error(kind: str, text: str, details: str) -> Exception:
    return pgrst(400, "PGRST100", f'"failed to parse {kind} ({text})" (line 1, column 1)', details)


@dataclass(frozen=True)
class Column:
    name: str
    alias: str | None = None
    cast: str | None = None

    def sql(self) -> sql.Composable:
        if self.name == "*":
            return sql.SQL("{}.*").format(_ALIAS)
        expr: sql.Composable = sql.SQL("{}.{}").format(_ALIAS, sql.Identifier(self.name))
        if self.cast:
            expr = sql.SQL("CAST({} AS {})").format(expr, sql.SQL(self.cast))
        return sql.SQL("{} AS {}").format(expr, sql.Identifier(self.alias or self.name))


def parse_select(text: str | None) -> list[Column]:
    columns: list[Column] = []
    for raw in split_top(text or "*"):
        item = raw.strip()
        if not item:
            continue
        if "(" in item:
            details = f"Embedding is not supported by the stand-in: {item}"
            raise pgrst(
                400, "PGRST200", "Could not find a relationship in the schema cache", details
            )
        alias = None
        if ":" in item.replace("::", ""):
            alias, _, item = item.partition(":")
            alias = unquote(alias)
        name, _, cast = item.partition("::")
        if cast and not _CAST.match(cast):
            raise parse_error("select", raw, f"unexpected cast {cast!r}")
        columns.append(Column(unquote(name), alias, cast or None))
    return columns or [Column("*")]


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str
    value: str
    negate: bool = False
    values: tuple[str, ...] = field(default=())

    def columns(self) -> set[str]:
        return {self.column}

    def sql(self) -> tuple[sql.Composable, list[object]]:
        column = sql.SQL("{}.{}").format(_ALIAS, sql.Identifier(self.column))
        params: list[object] = []
        if self.operator == "is":
            expr = sql.SQL("{} IS {}").format(column, sql.SQL(_IS_VALUES[self.value.lower()]))
        elif self.operator == "in":
            if not self.values:
                expr = sql.SQL("FALSE")
            else:
                places = sql.SQL(", ").join(sql.Placeholder() for _ in self.values)
                expr = sql.SQL("{} IN ({})").format(column, places)
                params.extend(self.values)
        else:
            value = self.value
            if self.operator in ("like", "ilike"):
                value = value.replace("*", "%")
            expr = sql.SQL("{} {} {}").format(
                column, sql.SQL(_OPERATORS[self.operator]), sql.Placeholder()
            )
            params.append(value)
        if self.negate:
            expr = sql.SQL("NOT ({})").format(expr)
        return expr, params


def parse_filter(key: str, text: str) -> Filter:
    rest = text
    negate = rest.startswith("not.")
    if negate:
        rest = rest[4:]
    operator, dot, value = rest.partition(".")
    if not dot or (operator not in _OPERATORS and operator not in ("is", "in")):
        raise parse_error("filter", text, f"unknown operator {operator!r}")
    column = unquote(key)
    if operator == "is":
        if value.lower() not in _IS_VALUES:
            raise parse_error("filter", text, "is expects null, not_null, true, false or unknown")
        return Filter(column, operator, value, negate)
    if operator == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise parse_error("filter", text, "in expects a list in parentheses")
        inner = value[1:-1]
        values = tuple(unquote(v.strip()) for v in split_top(inner)) if inner else ()
        return Filter(column, operator, value, negate, values)
    return Filter(column, operator, value, negate)


@dataclass(frozen=True)
class Group:
    """`or=(a.eq.1,and(b.gt.2,c.is.null))`: a logic tree of filters."""

    conjunction: str
    items: tuple[Filter | Group, ...]
    negate: bool = False

    def columns(self) -> set[str]:
        return set().union(*(item.columns() for item in self.items))

    def sql(self) -> tuple[sql.Composable, list[object]]:
        joined, params = _join(self.items, f" {self.conjunction} ")
        expr = sql.SQL("({})").format(joined)
        if self.negate:
            expr = sql.SQL("NOT {}").format(expr)
        return expr, params


def parse_group(key: str, text: str) -> Group:
    negate = key.startswith("not.")
    conjunction = key.removeprefix("not.")
    if not (text.startswith("(") and text.endswith(")")):
        raise parse_error("logic tree", text, "expected a list in parentheses")
    items: list[Filter | Group] = []
    for raw in split_top(text[1:-1]):
        item = raw.strip()
        head, paren, _ = item.partition("(")
        if paren and head.removeprefix("not.") in ("and", "or"):
            items.append(parse_group(head, item[len(head) :]))
            continue
        column, dot, rest = item.partition(".")
        if not dot:
            raise parse_error("logic tree", text, f"unexpected {item!r}")
        found = parse_filter(column, rest)
        if found.operator not in ("in", "is"):
            found = Filter(found.column, found.operator, unquote(found.value), found.negate)
        items.append(found)
    return Group(conjunction.upper(), tuple(items), negate)


LOGIC_KEYS = frozenset({"or", "and", "not.or", "not.and"})


@dataclass(frozen=True)
class Order:
    column: str
    descending: bool = False
    nulls: str | None = None

    def sql(self) -> sql.Composable:
        parts = [sql.SQL("{}.{}").format(_ALIAS, sql.Identifier(self.column))]
        parts.append(sql.SQL("DESC" if self.descending else "ASC"))
        if self.nulls:
            parts.append(sql.SQL(self.nulls))
        return sql.SQL(" ").join(parts)


def parse_order(text: str | None) -> list[Order]:
    orders: list[Order] = []
    for raw in split_top(text or ""):
        if not raw.strip():
            continue
        pieces = split_top(raw.strip(), ".")
        column, modifiers = unquote(pieces[0]), pieces[1:]
        descending, nulls = False, None
        for modifier in modifiers:
            if modifier in ("asc", "desc"):
                descending = modifier == "desc"
            elif modifier in ("nullsfirst", "nullslast"):
                nulls = "NULLS FIRST" if modifier == "nullsfirst" else "NULLS LAST"
            else:
                raise parse_error("order", raw, f"unexpected {modifier!r}")
        orders.append(Order(column, descending, nulls))
    return orders


def _join(items: Iterable[Filter | Group], conjunction: str) -> tuple[sql.Composable, list[object]]:
    clauses: list[sql.Composable] = []
    params: list[object] = []
    for item in items:
        clause, values = item.sql()
        clauses.append(clause)
        params.extend(values)
    if not clauses:
        return sql.SQL("TRUE"), params
    return sql.SQL(conjunction).join(clauses), params


def where(filters: Iterable[Filter | Group]) -> tuple[sql.Composable, list[object]]:
    return _join(filters, " AND ")
