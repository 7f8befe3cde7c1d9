from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DocumentSource", "DownloadResult", "Selections"]

DocumentSource = Literal["index", "acte", "plan_cadastraux"]
DOCUMENT_SOURCES: tuple[DocumentSource, ...] = ("index", "acte", "plan_cadastraux")


@dataclass(frozen=True, kw_only=True)
class Selections:
    """The option texts chosen on the search form (they may differ from the request's words)."""

    circonscription: str
    cadastre: str | None = None
    designation_secondaire: str | None = None
    acte_type: str | None = None  # the type that found the acte (may differ from the request)


@dataclass(frozen=True, kw_only=True)
class DownloadResult:
    """The PDF and what was chosen on the registry's forms to get it."""

    pdf: bytes = field(repr=False)
    selections: Selections
    account_id: str = ""
    session_reused: bool = False
    logins: int = 0  # logins this download needed (0 when a stored session was reused)

    @property
    def size_bytes(self) -> int:
        return len(self.pdf)
