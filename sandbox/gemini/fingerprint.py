from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageOps, ImageStat

from tasks.pages import images as page_images
from tasks.pages.index_rows import IndexPage

__all__ = ["REFERENCE_DPI", "KnownPage", "PageBook", "distance", "fingerprint", "pdf_page_images"]

SIDE_PX = (128, 96)
INK_LEVEL = 180  # after autocontrast, darker than this is ink; the paper grain is lighter
# References come from the scans at their own resolution: pdfium shrinking a scan to a low DPI
# thins the strokes and the fingerprint no longer matches a 300 DPI render of the same page.
REFERENCE_DPI = 150
# Measured on the catalogue (25 index pages against their drawings, probes through
# tasks/pages/images.py):
# at 300 DPI sharpened the same page is within 1.8, any other page 3.4 or more away; at 100-200
# DPI the same page drifts to 2.7-3.3 while others stay above 3.7, hence the second rule:
# clearly nearer one page than any other.
SAME_PAGE_DISTANCE = 2.4
NEAREST_DISTANCE = 5.5
NEAREST_RATIO = 0.85


def fingerprint(image: Image.Image) -> Image.Image:
    """Where the ink is, as a 128x96 map of ink density, blind to paper grain and contrast."""
    ink = ImageOps.autocontrast(image.convert("L"), cutoff=1).point(
        lambda v: 255 if v < INK_LEVEL else 0
    )
    return ink.resize(SIDE_PX, Image.Resampling.BOX)


def distance(a: Image.Image, b: Image.Image) -> float:
    return ImageStat.Stat(ImageChops.difference(a, b)).mean[0]


@dataclass(frozen=True)
class KnownPage:
    page: IndexPage
    number: int  # page number within its document, from 1
    document_id: str
    fingerprint: Image.Image
    aspect: float  # width / height


def known_page(page: IndexPage, number: int, document_id: str, image: Image.Image) -> KnownPage:
    return KnownPage(page, number, document_id, fingerprint(image), image.width / image.height)


def pdf_page_images(pdf: bytes, dpi: int = REFERENCE_DPI) -> list[Image.Image]:
    options = page_images.PageOptions(dpi=dpi, sharpen=False)
    return [Image.open(io.BytesIO(jpeg)) for _, jpeg in page_images.render_pages(pdf, options)]


class PageBook:
    """The index pages whose true content the stand-in knows, found again by their look."""

    def __init__(self, loader: Callable[[], Iterable[KnownPage]] | None = None) -> None:
        self._pages: list[KnownPage] = []
        self._loader = loader
        self._lock = threading.Lock()

    def add(self, known: KnownPage) -> None:
        with self._lock:
            self._pages.append(known)

    def load(self) -> int:
        """Run the loader once (the first match would otherwise); returns the pages known."""
        with self._lock:
            if self._loader is not None:
                loader, self._loader = self._loader, None
                self._pages.extend(loader())
            return len(self._pages)

    def match(self, image: Image.Image) -> KnownPage | None:
        self.load()
        probe = fingerprint(image)
        aspect = image.width / image.height
        scored = sorted(
            (
                (distance(probe, known.fingerprint), i)
                for i, known in enumerate(self._pages)
                if abs(known.aspect - aspect) <= 0.03 * known.aspect
            ),
        )
        if not scored:
            return None
        best, index = scored[0]
        second = scored[1][0] if len(scored) > 1 else float("inf")
        if best <= SAME_PAGE_DISTANCE or (
            best <= NEAREST_DISTANCE and best <= NEAREST_RATIO * second
        ):
            return self._pages[index]
        return None
