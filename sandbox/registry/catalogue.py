from __future__ import annotations

import random
from datetime import date

from sandbox.registry.documents import acte_text, index_page_images, render_pdf
from sandbox.registry.records import (
    ACTE_TYPES,
    Account,
    Acte,
    Cadastre,
    Circonscription,
    Designation,
    Document,
    IndexDocument,
    Plan,
    PlanVersion,
    normalize_lot,
)
from sandbox.registry.rows import format_numero, generate_rows
from tasks.pages.index_rows import IndexPage

__all__ = [
    "ACCOUNTS",
    "ACTES",
    "ACTE_TYPES",
    "CIRCONSCRIPTIONS",
    "DOCUMENTS",
    "INDEX_DOCUMENTS",
    "PLANS",
    "SEED",
    "acte_text",
    "circonscription_by_code",
    "circonscription_by_name",
    "document_by_id",
    "find_acte",
    "find_index",
    "find_plan",
    "index_page_images",
    "lot_circonscriptions",
    "render_pdf",
    "similar_actes",
]

SEED = 1850  # the index registers go back to about 1850
CADASTRE_DU_QUEBEC = "000001"


def _cadastre(code: str, name: str, *designations: str) -> Cadastre:
    return Cadastre(
        code=code,
        name=name,
        designations=tuple(
            Designation(code=f"{code[-3:]}{i:03d}", name=d) for i, d in enumerate(designations, 1)
        ),
    )


def _cq() -> Cadastre:
    return Cadastre(code=CADASTRE_DU_QUEBEC, name="Cadastre du Québec")


CIRCONSCRIPTIONS: tuple[Circonscription, ...] = (
    Circonscription(
        code="66",
        name="Montréal",
        cadastres=(
            _cq(),
            _cadastre("000102", "Paroisse de Montréal"),
            _cadastre("000103", "Paroisse du Sault-au-Récollet"),
            _cadastre("000104", "Village de la Côte-des-Neiges"),
        ),
    ),
    Circonscription(
        code="23",
        name="Québec",
        cadastres=(
            _cq(),
            _cadastre("000231", "Cité de Québec, quartier Saint-Roch"),
            _cadastre("000232", "Paroisse de Saint-Ambroise-de-la-Jeune-Lorette"),
        ),
    ),
    Circonscription(
        code="37",
        name="Trois-Rivières",
        cadastres=(
            _cq(),
            _cadastre("000371", "Paroisse de Trois-Rivières"),
            _cadastre("000372", "Cité des Trois-Rivières"),
        ),
    ),
    Circonscription(
        code="54",
        name="Saint-Hyacinthe",
        cadastres=(
            _cq(),
            _cadastre("000541", "Paroisse de Saint-Hyacinthe-le-Confesseur", "Partie", "Rang 2"),
            _cadastre("000542", "Paroisse de Notre-Dame-de-Saint-Hyacinthe"),
        ),
    ),
    Circonscription(
        code="44",
        name="Shefford",
        cadastres=(
            _cq(),
            _cadastre("000441", "Canton d'Ely", "Rang 1", "Rang 2", "Rang 3", "Rang 4"),
            _cadastre("000442", "Canton de Granby", "Rang 1", "Rang 2"),
            _cadastre("000443", "Canton de Shefford"),
        ),
    ),
    Circonscription(
        code="60",
        name="Laval",
        cadastres=(
            _cq(),
            _cadastre("000601", "Paroisse de Saint-Martin"),
        ),
    ),
)

ACCOUNTS: tuple[Account, ...] = (
    Account(username="agent01", password="Sirf-2024-a"),
    Account(username="agent02", password="Sirf-2024-b"),
    Account(username="agent03", password="Sirf-2024-c"),
    Account(username="ancien01", password="Sirf-2019-z", active=False),
)

MODERN, OLD = "Modern-Inscription", "Old 1"
CQ = "Cadastre du Québec"
# (id, circonscription, cadastre, lot, designation, pages, first year, last year, template)
_INDEX_SPECS = (
    ("IDX-001", "Montréal", CQ, "2 274 178", None, 2, 2001, 2024, MODERN),
    ("IDX-002", "Montréal", "Paroisse du Sault-au-Récollet", "152-18", None, 3, 1948, 1995, OLD),
    ("IDX-003", "Québec", CQ, "1 478 325", None, 1, 2003, 2023, MODERN),
    ("IDX-004", "Québec", "Cité de Québec, quartier Saint-Roch", "2101", None, 4, 1951, 1999, OLD),
    ("IDX-005", "Trois-Rivières", CQ, "3 915 040", None, 2, 2002, 2022, MODERN),
    ("IDX-006", "Trois-Rivières", "Paroisse de Trois-Rivières", "97-4", None, 1, 1960, 1990, OLD),
    ("IDX-007", "Saint-Hyacinthe", CQ, "3 405 226", None, 2, 2000, 2024, MODERN),
    (
        "IDX-008",
        "Saint-Hyacinthe",
        "Paroisse de Saint-Hyacinthe-le-Confesseur",
        "410",
        "Partie",
        3,
        1955,
        1998,
        OLD,
    ),
    ("IDX-009", "Shefford", "Canton d'Ely", "15-2", "Rang 3", 2, 1965, 1999, OLD),
    ("IDX-010", "Shefford", "Canton d'Ely", "15-2", "Rang 4", 1, 1970, 1996, OLD),
    ("IDX-011", "Laval", CQ, "1 652 901", None, 4, 2000, 2024, MODERN),
)


def _index_documents(rng: random.Random) -> tuple[IndexDocument, ...]:
    documents = []
    for doc_id, circ, cad, lot, designation, npages, first, last, template in _INDEX_SPECS:
        counts = [rng.randrange(5, 9) for _ in range(npages)]
        rows = generate_rows(
            sum(counts),
            start=date(first, 1, 1),
            end=date(last, 12, 31),
            modern=template.startswith("Modern"),
            rng=rng,
        )
        pages, offset = [], 0
        for count in counts:
            pages.append(
                IndexPage(
                    template=template,
                    circonscription=circ,
                    cadastre=cad,
                    lot=lot,
                    rows=rows[offset : offset + count],
                )
            )
            offset += count
        documents.append(
            IndexDocument(
                id=doc_id,
                circonscription=circ,
                cadastre=cad,
                lot=lot,
                designation=designation,
                pages=tuple(pages),
            )
        )
    return tuple(documents)


_CLAUSES = (
    "Le vendeur déclare que l'immeuble est libre de toute hypothèque, sauf ce qui est "
    "mentionné aux présentes.",
    "L'acquéreur prend l'immeuble dans l'état où il se trouve, déclarant l'avoir vu et "
    "examiné à sa satisfaction.",
    "Les taxes municipales et scolaires sont réparties à compter de la date de signature "
    "des présentes.",
    "Le débiteur s'engage à maintenir l'immeuble assuré contre l'incendie pour sa pleine "
    "valeur assurable.",
    "Le créancier consent à la radiation de toute inscription relative à l'hypothèque "
    "ci-dessus mentionnée.",
    "La servitude est réelle, perpétuelle et attachée au fonds dominant.",
    "Les parties élisent domicile à leurs adresses respectives mentionnées aux présentes.",
)
_TYPE_BY_NATURE = {
    "Quittance": "Radiation",
    "Avis d'adresse": "Avis d'adresse",
    "Servitude": "Acte divers",
}


def _actes(index_documents: tuple[IndexDocument, ...], rng: random.Random) -> tuple[Acte, ...]:
    actes: list[Acte] = []
    for document in index_documents:
        if not document.pages[0].template.startswith("Modern"):
            continue
        rows = [row for page in document.pages for row in page.rows]
        for row in rows[:3] if len(actes) < 8 else rows[:1]:
            amount = None
            if row.remarques and "$" in row.remarques:
                amount = row.remarques.split(":", 1)[1].strip()
            actes.append(
                Acte(
                    id=f"ACT-{len(actes) + 1:03d}",
                    circonscription=document.circonscription,
                    type_document=_TYPE_BY_NATURE.get(row.nature, "Acte"),
                    numero=row.numero,
                    date=row.date or "",
                    nature=row.nature,
                    parties=tuple(row.parties),
                    lot=document.lot,
                    cadastre=document.cadastre,
                    amount=amount,
                    clauses=tuple(rng.sample(_CLAUSES, 3)),
                )
            )
    first, second = actes[0], actes[1]
    # A paper-only neighbour of the first acte (for the "similar numbers" list) and a paper-only
    # twin of the second (same number: the result list has one paper and one electronic row).
    neighbour = int(first.numero.replace(" ", "")) + 1
    actes.append(_paper(first, "ACT-P01", format_numero(neighbour, spaced=True)))
    actes.append(_paper(second, "ACT-P02", second.numero))
    actes.append(
        Acte(
            id="ACT-P03",
            circonscription="Shefford",
            type_document="Acte",
            numero="187 455",
            date="1974-06-12",
            nature="Vente",
            parties=(),
            lot="15-2",
            cadastre="Canton d'Ely",
            amount=None,
            clauses=(),
            paper_only=True,
        )
    )
    return tuple(actes)


def _paper(acte: Acte, doc_id: str, numero: str) -> Acte:
    return Acte(
        id=doc_id,
        circonscription=acte.circonscription,
        type_document=acte.type_document,
        numero=numero,
        date=acte.date,
        nature=acte.nature,
        parties=acte.parties,
        lot=acte.lot,
        cadastre=acte.cadastre,
        amount=acte.amount,
        clauses=acte.clauses,
        paper_only=True,
    )


def _plan(
    plan_id: str,
    circ: str,
    cad: str,
    lot: str,
    designation: str | None,
    dates: tuple[str, ...],
    *,
    inactive: bool = False,
    rng: random.Random,
) -> Plan:
    streets = tuple(
        rng.sample(
            (
                "rue Principale",
                "boulevard Laurier",
                "rue Saint-Jean",
                "chemin du Lac",
                "avenue des Érables",
                "rang Saint-Joseph",
            ),
            2,
        )
    )
    base = int(normalize_lot(lot).split("-")[0]) if normalize_lot(lot)[0].isdigit() else 100
    neighbours = tuple(format_numero(base + d, spaced=cad == CQ) for d in (-2, -1, 1, 2))
    versions = tuple(
        PlanVersion(
            id=f"{plan_id}-V{i}",
            circonscription=circ,
            cadastre=cad,
            lot=lot,
            date=day,
            numero=f"{rng.randrange(1000, 99999)}",
            neighbours=neighbours,
            streets=streets,
        )
        for i, day in enumerate(dates, 1)
    )
    return Plan(
        circonscription=circ,
        cadastre=cad,
        lot=lot,
        designation=designation,
        versions=versions,
        inactive=inactive,
    )


def _plans(rng: random.Random) -> tuple[Plan, ...]:
    return (
        _plan(
            "PLN-001",
            "Montréal",
            "Cadastre du Québec",
            "2 274 178",
            None,
            ("1998-03-16", "2011-09-02", "2019-11-27"),
            rng=rng,
        ),
        _plan(
            "PLN-002", "Québec", "Cadastre du Québec", "1 478 325", None, ("2004-05-10",), rng=rng
        ),
        _plan(
            "PLN-003",
            "Shefford",
            "Canton d'Ely",
            "15-2",
            "Rang 3",
            ("1968-07-22", "1989-04-03"),
            inactive=True,
            rng=rng,
        ),
        _plan(
            "PLN-004",
            "Trois-Rivières",
            "Cadastre du Québec",
            "3 915 040",
            None,
            ("2002-01-15", "2016-08-30"),
            rng=rng,
        ),
    )


_rng = random.Random(SEED)
INDEX_DOCUMENTS = _index_documents(_rng)
ACTES = _actes(INDEX_DOCUMENTS, _rng)
PLANS = _plans(_rng)
DOCUMENTS: dict[str, Document] = {
    d.id: d for d in (*INDEX_DOCUMENTS, *ACTES, *(v for p in PLANS for v in p.versions))
}


def document_by_id(doc_id: str) -> Document | None:
    return DOCUMENTS.get(doc_id)


def circonscription_by_code(code: str) -> Circonscription | None:
    return next((c for c in CIRCONSCRIPTIONS if c.code == code), None)


def circonscription_by_name(name: str) -> Circonscription | None:
    return next((c for c in CIRCONSCRIPTIONS if c.name == name), None)


def _same(a: str | None, b: str | None) -> bool:
    return (a or "") == (b or "")


def find_index(
    circonscription: str, cadastre: str, lot: str, designation: str | None = None
) -> IndexDocument | None:
    """By names (as the select options show them); lot spaces are ignored."""
    return next(
        (
            d
            for d in INDEX_DOCUMENTS
            if d.circonscription == circonscription
            and d.cadastre == cadastre
            and normalize_lot(d.lot) == normalize_lot(lot)
            and _same(d.designation, designation)
        ),
        None,
    )


def lot_circonscriptions(cadastre: str, lot: str) -> set[str]:
    """Circonscriptions where an index or a plan knows this lot of this cadastre."""
    lots = [(d.circonscription, d.cadastre, d.lot) for d in INDEX_DOCUMENTS]
    lots += [(p.circonscription, p.cadastre, p.lot) for p in PLANS]
    return {c for c, cad, lt in lots if cad == cadastre and normalize_lot(lt) == normalize_lot(lot)}


def _numero_key(numero: str) -> str:
    return "".join(numero.split())


def find_acte(circonscription: str, type_document: str, numero: str) -> list[Acte]:
    """Every acte registered under exactly this number, paper-only ones first."""
    found = [
        a
        for a in ACTES
        if a.circonscription == circonscription
        and a.type_document == type_document
        and _numero_key(a.numero) == _numero_key(numero)
    ]
    return sorted(found, key=lambda a: not a.paper_only)


def similar_actes(circonscription: str, type_document: str, numero: str) -> list[Acte]:
    """Numbers one digit away, paper-only documents first, as the site lists them."""
    key = _numero_key(numero)
    found = [
        a
        for a in ACTES
        if a.circonscription == circonscription
        and a.type_document == type_document
        and _numero_key(a.numero) != key
        and _one_edit(_numero_key(a.numero), key)
    ]
    return sorted(found, key=lambda a: (not a.paper_only, a.numero))


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def find_plan(
    circonscription: str, cadastre: str, lot: str, designation: str | None = None
) -> Plan | None:
    return next(
        (
            p
            for p in PLANS
            if p.circonscription == circonscription
            and p.cadastre == cadastre
            and normalize_lot(p.lot) == normalize_lot(lot)
            and _same(p.designation, designation)
        ),
        None,
    )
