from __future__ import annotations

import re

from tasks.pages.index_rows import IndexPage, IndexRow, Party

# The text layout operators and the boost prompt know (DOMAIN.md §3.2): page markers, header block,
# one "Ligne N:" block per inscription, "[Vide]" for an empty cell.
EMPTY = "[Vide]"
PAGE_MARKER = re.compile(r"^--- Page (\d+) ---$", re.M)
FIELD = re.compile(r"^([^:\n]+?)\s*:\s*(.*)$")

HEADER_FIELDS = {
    "Gabarit": "template",
    "Circonscription foncière": "circonscription",
    "Cadastre": "cadastre",
    "Lot": "lot",
}
ROW_FIELDS = {
    "Date de présentation d'inscription": "date",
    "Numéro": "numero",
    "Nature de l'acte": "nature",
    "Remarques": "remarques",
    "Radiations": "radiations",
}


def _cell(value: str | None) -> str:
    return value if value else EMPTY


def _value(text: str) -> str | None:
    text = text.strip()
    return None if not text or text == EMPTY else text


def render_page(number: int, page: IndexPage) -> str:
    lines = [
        f"--- Page {number} ---",
        f"Gabarit : {_cell(page.template)}",
        "Métadonnées de l'En-tête :",
        f"Circonscription foncière : {_cell(page.circonscription)}",
        f"Cadastre : {_cell(page.cadastre)}",
        f"Lot : {_cell(page.lot)}",
        "",
        "Données du Tableau :",
    ]
    for n, row in enumerate(page.rows, start=1):
        lines += [
            f"Ligne {n}:",
            f"Date de présentation d'inscription : {_cell(row.date)}",
            f"Numéro : {_cell(row.numero)}",
            f"Nature de l'acte : {_cell(row.nature)}",
            f"Qualité : {'; '.join(_cell(p.role) for p in row.parties) or EMPTY}",
            f"Nom des parties : {'; '.join(p.name for p in row.parties) or EMPTY}",
            f"Remarques : {_cell(row.remarques)}",
            f"Radiations : {_cell(row.radiations)}",
        ]
    return "\n".join(lines)


def format_pages(pages: list[IndexPage]) -> str:
    """The whole document as text, pages in order, separated by a blank line."""
    return "\n\n".join(render_page(n, page) for n, page in enumerate(pages, start=1)) + "\n"


def _row(fields: dict[str, str]) -> IndexRow:
    names = [n.strip() for n in fields.get("Nom des parties", "").split(";")]
    roles = [r.strip() for r in fields.get("Qualité", "").split(";")]
    parties = [
        Party(name=name, role=_value(roles[i]) if i < len(roles) else None)
        for i, name in enumerate(names)
        if _value(name)
    ]
    values = {key: _value(fields.get(label, "")) for label, key in ROW_FIELDS.items()}
    # a boost that dropped a required cell leaves it empty rather than losing the row
    required = {"numero": values["numero"] or "", "nature": values["nature"] or ""}
    return IndexRow(**{**values, **required}, parties=parties)


def parse_pages(text: str) -> list[IndexPage]:
    """Read the layout written by `format_pages` (or a boost that kept it) back into data."""
    pages = []
    chunks = PAGE_MARKER.split(text)
    for body in chunks[2::2]:
        header: dict[str, str] = {}
        rows: list[dict[str, str]] = []
        for line in body.splitlines():
            if re.match(r"^Ligne \d+\s*:\s*$", line.strip()):
                rows.append({})
                continue
            match = FIELD.match(line.strip())
            if not match:
                continue
            label, value = match.group(1).strip(), match.group(2)
            if rows:
                rows[-1][label] = value
            elif label in HEADER_FIELDS:
                header[HEADER_FIELDS[label]] = value
        pages.append(
            IndexPage(
                template=_value(header.get("template", "")) or "",
                circonscription=_value(header.get("circonscription", "")),
                cadastre=_value(header.get("cadastre", "")),
                lot=_value(header.get("lot", "")),
                rows=[_row(fields) for fields in rows],
            )
        )
    return pages
