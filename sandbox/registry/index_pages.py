from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

from PIL import Image, ImageDraw

from sandbox.registry.drawing import age_scan, font, wrap
from tasks.pages.index_rows import IndexPage, IndexRow

__all__ = ["draw_index_page"]

PAGE_SIZE_PX = (1650, 1275)  # US Letter landscape at 150 DPI
MARGIN_PX = 60
CELL_PAD_PX = 6

Cell = Callable[[IndexRow], str]


def _parties(row: IndexRow) -> str:
    return "\n".join(p.name for p in row.parties)


def _roles(row: IndexRow) -> str:
    return "\n".join(p.role or "" for p in row.parties)


def _old_parties(row: IndexRow) -> str:
    return "\n".join(f"{p.role} : {p.name}" if p.role else p.name for p in row.parties)


def _old_date(row: IndexRow) -> str:
    return date.fromisoformat(row.date).strftime("%d-%m-%Y") if row.date else ""


# (header, share of the table width, cell text)
COLUMNS: dict[str, tuple[tuple[str, float, Cell], ...]] = {
    "Modern-Inscription": (
        ("Date de présentation", 0.10, lambda r: r.date or ""),
        ("Numéro d'inscription", 0.11, lambda r: r.numero),
        ("Nature de l'acte", 0.15, lambda r: r.nature),
        ("Qualité", 0.10, _roles),
        ("Nom des parties", 0.24, _parties),
        ("Remarques", 0.18, lambda r: r.remarques or ""),
        ("Radiations", 0.12, lambda r: r.radiations or ""),
    ),
    "Old 1": (
        ("NOMS DES PARTIES", 0.30, _old_parties),
        ("TITRE DE L'ACTE", 0.15, lambda r: r.nature),
        ("DATE D'ENREG.", 0.11, _old_date),
        ("N° D'ENREG.", 0.10, lambda r: r.numero),
        ("REMARQUES ET AVIS D'ADRESSE", 0.22, lambda r: r.remarques or ""),
        ("RADIATIONS", 0.12, lambda r: r.radiations or ""),
    ),
}


def _header(
    draw: ImageDraw.ImageDraw, page: IndexPage, number: int, total: int, designation: str | None
) -> int:
    width = PAGE_SIZE_PX[0]
    title = "INDEX DES IMMEUBLES"
    title_font = font(34, bold=True)
    draw.text(((width - title_font.getlength(title)) / 2, 40), title, font=title_font, fill=0)
    meta_font = font(20)
    lot = page.lot or ""
    if designation:
        lot = f"{lot} ({designation})"
    draw.text(
        (MARGIN_PX, 100),
        f"Circonscription foncière : {page.circonscription}",
        font=meta_font,
        fill=0,
    )
    draw.text((MARGIN_PX, 130), f"Cadastre : {page.cadastre}", font=meta_font, fill=0)
    draw.text((MARGIN_PX + 800, 100), f"Lot : {lot}", font=meta_font, fill=0)
    page_label = f"Page {number} de {total}"
    draw.text(
        (width - MARGIN_PX - meta_font.getlength(page_label), 130),
        page_label,
        font=meta_font,
        fill=0,
    )
    return 175


def draw_index_page(
    page: IndexPage, number: int, total: int, *, designation: str | None, rng: random.Random
) -> Image.Image:
    image = Image.new("L", PAGE_SIZE_PX, 255)
    draw = ImageDraw.Draw(image)
    top = _header(draw, page, number, total, designation)
    columns = COLUMNS.get(page.template, COLUMNS["Modern-Inscription"])
    table_width = PAGE_SIZE_PX[0] - 2 * MARGIN_PX
    lefts = [MARGIN_PX]
    for _, share, _ in columns:
        lefts.append(lefts[-1] + round(share * table_width))
    head_font, cell_font = font(17, bold=True), font(17)
    line_px = 22
    heads = [
        wrap(h, head_font, lefts[i + 1] - lefts[i] - 2 * CELL_PAD_PX)
        for i, (h, _, _) in enumerate(columns)
    ]
    bottom = top + max(len(h) for h in heads) * line_px + 2 * CELL_PAD_PX
    draw.rectangle((lefts[0], top, lefts[-1], bottom), outline=0, width=2)
    for i, lines in enumerate(heads):
        for j, text in enumerate(lines):
            draw.text(
                (lefts[i] + CELL_PAD_PX, top + CELL_PAD_PX + j * line_px),
                text,
                font=head_font,
                fill=0,
            )
    y = bottom
    for row in page.rows:
        cells = [
            wrap(cell(row), cell_font, lefts[i + 1] - lefts[i] - 2 * CELL_PAD_PX)
            for i, (_, _, cell) in enumerate(columns)
        ]
        height = max(len(c) for c in cells) * line_px + 2 * CELL_PAD_PX
        for i, lines in enumerate(cells):
            for j, text in enumerate(lines):
                draw.text(
                    (lefts[i] + CELL_PAD_PX, y + CELL_PAD_PX + j * line_px),
                    text,
                    font=cell_font,
                    fill=0,
                )
        y += height
        draw.line((lefts[0], y, lefts[-1], y), fill=0, width=1)
    table_bottom = max(y, PAGE_SIZE_PX[1] - MARGIN_PX - 40)
    for x in lefts:
        draw.line((x, top, x, table_bottom), fill=0, width=2 if x in (lefts[0], lefts[-1]) else 1)
    draw.line((lefts[0], table_bottom, lefts[-1], table_bottom), fill=0, width=2)
    return age_scan(image, rng)
