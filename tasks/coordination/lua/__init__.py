"""The Redis Lua scripts, one `.lua` file each with its contract (KEYS, ARGV, what it returns) in
the comment block at its top, and the function that reads them."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["read_script"]


@cache
def read_script(name: str) -> str:
    """The text of `<name>.lua` in this folder."""
    return files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
