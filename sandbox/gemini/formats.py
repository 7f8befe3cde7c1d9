from __future__ import annotations

import re
from typing import Any

__all__ = ["ALIASES", "BOOST_MARKER", "boost_text", "conform"]

BOOST_MARKER = "TEXTE BRUT À BOOSTER :"

# (canonical name, alias pattern). A rule applies when the boost prompt names the canonical form.
ALIASES: tuple[tuple[str, str], ...] = (
    ("Hydro-Québec", r"\bHQ\b|\bHydro-Qc\b|\bH-Québec\b|\bHydro Quebec\b"),
    ("Ministère des Transports", r"\bMin\. Transp\.|\bMTQ\b"),
    ("Banque Royale du Canada", r"\bRoyal Bank(?: of Canada)?\b|\bRBC\b"),
    ("Banque Nationale", r"\bNational Bank\b|\bBNC\b"),
)


def boost_text(prompt: str) -> tuple[str, list[str]]:
    """The raw text after the boost marker, with the alias rules the instructions name applied."""
    instructions, _, raw = prompt.partition(BOOST_MARKER)
    raw = raw.lstrip("\n")
    corrections = []
    for canonical, pattern in ALIASES:
        if canonical.lower() not in instructions.lower():
            continue
        raw, count = re.subn(pattern, canonical, raw)
        # "Banque Royale du Canada (RBC)" must not become "X (X)".
        raw = raw.replace(f"{canonical} ({canonical})", canonical)
        if count:
            corrections.append(f"{canonical}: {count}")
    return raw, corrections


def conform(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Shape `value` (a dict of what the answer knows) to a requested response schema.

    Handles both forms the API takes: OpenAPI-style `responseSchema` (type "OBJECT") and JSON
    Schema `responseJsonSchema` ($ref, $defs, anyOf, type lists).
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    kind = _type(schema)
    if kind is None and "anyOf" in schema:
        variants = [_resolve(v, root) for v in schema["anyOf"]]
        if value is None and any(_type(v) == "null" for v in variants):
            return None
        concrete = [v for v in variants if _type(v) != "null"]
        return conform(value, concrete[0], root) if concrete else value
    if value is None and schema.get("nullable"):
        return None
    if kind == "object":
        source = value if isinstance(value, dict) else {}
        result = {}
        for name, sub in (schema.get("properties") or {}).items():
            if name in source:
                result[name] = conform(source[name], sub, root)
            else:
                result[name] = conform(_fallback(name, source, _resolve(sub, root)), sub, root)
        return result
    if kind == "array":
        items = schema.get("items") or {}
        return [conform(v, items, root) for v in value] if isinstance(value, list) else []
    if kind == "string":
        return "" if value is None else str(value) if not isinstance(value, dict) else ""
    if kind in ("integer", "number"):
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    if kind == "boolean":
        return bool(value)
    return value


_TEXT_NAMES = ("text", "texte", "content", "contenu", "transcription", "markdown", "result")


def _fallback(name: str, source: dict[str, Any], sub: dict[str, Any]) -> Any:
    """A value for a property the answer has no field of that name for."""
    kind = _type(sub)
    lowered = name.lower()
    if kind == "string" and any(word in lowered for word in _TEXT_NAMES):
        return source.get("text")
    if kind == "object":
        return source
    if kind == "array" and "page" in lowered:
        return source.get("pages")
    return None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if str(k).lower() != "null"]
        kind = non_null[0] if non_null else "null"
    if kind is None and "properties" in schema:
        kind = "object"
    return str(kind).lower() if kind is not None else None
