from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tasks.queue import Job

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
    def from_job(cls, job: Job) -> RegistryRequest:
        """What a claimed row asks for (parse_job has checked and normalised it)."""
        return cls(
            document_source=job.document_source,  # type: ignore[arg-type]
            document_number=job.document_number,
            circonscription_fonciere=job.circonscription,
            cadastre=job.cadastre,
            designation_secondaire=job.designation_secondaire,
            acte_type=job.acte_type,
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
