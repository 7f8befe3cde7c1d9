from __future__ import annotations

import io
import random
import threading
import zlib
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import ParamSpec, TypeVar

from PIL import Image

from sandbox.registry.index_pages import draw_index_page
from sandbox.registry.pdfwriter import Line, text_pdf
from sandbox.registry.plan_drawing import draw_plan
from sandbox.registry.records import Acte, Document, IndexDocument, PlanVersion

__all__ = ["acte_lines", "acte_text", "index_page_images", "plan_image", "render_pdf"]

SCAN_DPI = 150.0
_NOTARIES = ("Me Julie Fournier", "Me Pierre-Luc Dubé", "Me Nathalie Caron", "Me Robert Lachance")
_CIVIC = (112, 245, 1380, 77, 3021, 560)


P = ParamSpec("P")
R = TypeVar("R")
# One render at a time: concurrent first requests for a document (its page images load in
# parallel) would otherwise each render it, fighting over the GIL.
_render_lock = threading.RLock()


def _cached(func: Callable[P, R]) -> Callable[P, R]:
    cached = lru_cache(maxsize=64)(func)

    @wraps(func)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        with _render_lock:
            return cached(*args, **kwargs)

    return locked


def _rng(doc_id: str) -> random.Random:
    # crc32, not hash(): the same document must look the same in every process.
    return random.Random(zlib.crc32(doc_id.encode()))


@_cached
def _index_images(document: IndexDocument) -> tuple[Image.Image, ...]:
    rng = _rng(document.id)
    total = len(document.pages)
    return tuple(
        draw_index_page(page, n, total, designation=document.designation, rng=rng)
        for n, page in enumerate(document.pages, 1)
    )


def index_page_images(document: IndexDocument) -> list[Image.Image]:
    """The scanned-looking page images, one per IndexPage, in order (copies: safe to modify)."""
    return [image.copy() for image in _index_images(document)]


@_cached
def plan_image(version: PlanVersion) -> Image.Image:
    return draw_plan(version, _rng(version.id))


def acte_lines(acte: Acte) -> list[Line]:
    rng = _rng(acte.id)
    notary = rng.choice(_NOTARIES)
    civic = rng.choice(_CIVIC)
    lines = [
        Line("REGISTRE FONCIER DU QUÉBEC", 14, bold=True),
        Line(
            f"Bureau de la publicité des droits de la circonscription foncière de "
            f"{acte.circonscription}",
            10,
        ),
        Line(f"Numéro d'inscription : {acte.numero}", 11, bold=True, space_before=8),
        Line(
            f"Date de présentation : {acte.date} à {rng.randrange(9, 16)} h "
            f"{rng.randrange(0, 60):02d}",
            10,
        ),
        Line(f"Circonscription foncière : {acte.circonscription}", 10),
        Line(f"Type de document : {acte.type_document}", 10),
        Line("NATURE DE L'ACTE", 12, bold=True, space_before=12),
        Line(acte.nature.upper(), 11),
        Line("PARTIES", 12, bold=True, space_before=12),
    ]
    for party in acte.parties:
        lines.append(Line(f"{party.role or 'Partie'} : {party.name}", 10))
    lines += [
        Line("DESCRIPTION DE LA PROPRIÉTÉ", 12, bold=True, space_before=12),
        *_wrapped(
            f"Un immeuble connu et désigné comme étant le lot {acte.lot} du {acte.cadastre}, "
            f"circonscription foncière de {acte.circonscription}, avec bâtisse dessus érigée "
            f"portant le numéro civique {civic}."
        ),
        Line("MONTANTS", 12, bold=True, space_before=12),
        Line(f"Montant : {acte.amount}" if acte.amount else "Montant : aucun montant stipulé", 10),
        Line("CONDITIONS ET CLAUSES", 12, bold=True, space_before=12),
    ]
    for n, clause in enumerate(acte.clauses, 1):
        lines += _wrapped(f"{n}. {clause}")
    lines += [
        Line("SIGNATURES", 12, bold=True, space_before=12),
        Line(
            f"Fait et signé à {acte.circonscription}, le {acte.date}, devant {notary}, notaire.", 10
        ),
    ]
    return lines


def _wrapped(text: str, width_chars: int = 95) -> list[Line]:
    out, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width_chars:
            out.append(Line(current, 10))
            current = word
        else:
            current = f"{current} {word}".strip()
    out.append(Line(current, 10))
    return out


def acte_text(acte: Acte) -> str:
    """The acte's text layer, line by line, exactly as the PDF holds it (footers aside)."""
    return "\n".join(line.text for line in acte_lines(acte))


def _images_pdf(images: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    first, *rest = images
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=SCAN_DPI)
    return buffer.getvalue()


@_cached
def render_pdf(document: Document) -> bytes:
    """The bytes the registry's save link serves for this document (cached per process)."""
    if isinstance(document, IndexDocument):
        return _images_pdf(list(_index_images(document)))
    if isinstance(document, PlanVersion):
        return _images_pdf([plan_image(document)])
    if document.paper_only:
        raise ValueError(f"{document.id} exists on paper only")
    return text_pdf(acte_lines(document), title=f"Acte {document.numero}")
