from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DocumentSource", "DownloadResult", "RegistryRequest"]

DocumentSource = Literal["index", "acte", "plan_cadastraux"]
DOCUMENT_SOURCES: tuple[DocumentSource, ...] = ("index", "acte", "plan_cadastraux")


@dataclass(frozen=True, kw_only=True)
class RegistryRequest:
    """What to fetch: an index sheet or plan (by lot number) or an acte (by registration number)."""

    document_source: DocumentSource
    document_number: str
    circonscription_fonciere: str
    cadastre: str | None = None
    designation_secondaire: str | None = None
    acte_type: str | None = None

    def __post_init__(self) -> None:
        if self.document_source not in DOCUMENT_SOURCES:
            raise ValueError(f"unknown document_source {self.document_source!r}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RegistryRequest:
        """From an extraction_queue row (the normalised number wins when present)."""
        number = row.get("document_number_normalized") or row.get("document_number") or ""
        return cls(
            document_source=row["document_source"],
            document_number=str(number),
            circonscription_fonciere=row.get("circonscription_fonciere") or "",
            cadastre=row.get("cadastre") or None,
            designation_secondaire=row.get("designation_secondaire") or None,
            acte_type=row.get("acte_type") or None,
        )

    @property
    def label(self) -> str:
        return f"{self.document_source} {self.document_number} ({self.circonscription_fonciere})"


@dataclass(frozen=True, kw_only=True)
class DownloadResult:
    """The PDF and what was chosen on the registry's forms to get it."""

    pdf: bytes = field(repr=False)
    document_source: DocumentSource
    circonscription: str  # the option texts actually selected
    cadastre: str | None = None
    designation_secondaire: str | None = None
    acte_type: str | None = None  # the type that found the acte (may differ from the request)
    account_id: str = ""
    session_reused: bool = False
    logins: int = 0  # logins this download needed (0 when a stored session was reused)

    @property
    def size_bytes(self) -> int:
        return len(self.pdf)
