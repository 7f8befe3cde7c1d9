from __future__ import annotations

from dataclasses import dataclass

from tasks.pages.index_rows import IndexPage, Party

__all__ = [
    "ACTE_TYPES",
    "Account",
    "Acte",
    "Cadastre",
    "Circonscription",
    "Designation",
    "Document",
    "IndexDocument",
    "Plan",
    "PlanVersion",
    "normalize_lot",
]

# Option value -> label of the acte form's "Type de document" select.
ACTE_TYPES: dict[str, str] = {
    "01": "Acte",
    "02": "Acte divers",
    "03": "Avis d'adresse",
    "04": "Radiation",
}


def normalize_lot(lot: str) -> str:
    return "".join(lot.split()).upper()


@dataclass(frozen=True, kw_only=True)
class Designation:
    code: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Cadastre:
    code: str
    name: str
    designations: tuple[Designation, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Circonscription:
    code: str
    name: str
    cadastres: tuple[Cadastre, ...]


@dataclass(frozen=True, kw_only=True)
class Account:
    username: str
    password: str
    active: bool = True


@dataclass(frozen=True, kw_only=True, eq=False)
class IndexDocument:
    id: str
    circonscription: str
    cadastre: str
    lot: str
    designation: str | None
    pages: tuple[IndexPage, ...]
    kind: str = "index"


@dataclass(frozen=True, kw_only=True, eq=False)
class Acte:
    id: str
    circonscription: str
    type_document: str  # a label of ACTE_TYPES
    numero: str
    date: str  # YYYY-MM-DD
    nature: str
    parties: tuple[Party, ...]
    lot: str
    cadastre: str
    amount: str | None
    clauses: tuple[str, ...]
    paper_only: bool = False
    kind: str = "acte"


@dataclass(frozen=True, kw_only=True, eq=False)
class PlanVersion:
    id: str
    circonscription: str
    cadastre: str
    lot: str
    date: str
    numero: str  # the plan's minute / dossier number
    neighbours: tuple[str, ...]
    streets: tuple[str, ...]
    kind: str = "plan"


@dataclass(frozen=True, kw_only=True, eq=False)
class Plan:
    circonscription: str
    cadastre: str
    lot: str
    designation: str | None
    versions: tuple[PlanVersion, ...]  # oldest first: the last one is the most recent
    inactive: bool = False


Document = IndexDocument | Acte | PlanVersion
