from __future__ import annotations

from collections.abc import Iterator

from sandbox.gemini.fingerprint import KnownPage, known_page
from sandbox.registry import catalogue

__all__ = ["catalogue_pages"]


def catalogue_pages() -> Iterator[KnownPage]:
    """Every index page of the registry stand-in's catalogue, fingerprinted from its drawing
    (what the served PDF embeds, at the scan's resolution). Takes seconds: drawing dominates."""
    for document in catalogue.INDEX_DOCUMENTS:
        images = catalogue.index_page_images(document)
        for number, (page, image) in enumerate(zip(document.pages, images, strict=True), 1):
            yield known_page(page, number, document.id, image)
