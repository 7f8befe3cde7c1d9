"""PDF pages to OCR-ready JPEG images.

Exceptions:
* PdfError (DocumentFailed, permanent): the PDF cannot be turned into images; retrying will
  not help, fail the document.
  - EmptyPdf, CorruptPdf, EncryptedPdf, PdfWithoutPages
"""

from __future__ import annotations

import io
import re
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image, ImageFilter, ImageOps

from tasks.failures import DocumentFailed

__all__ = [
    "PDFIUM_LOCK",
    "CorruptPdf",
    "EmptyPdf",
    "EncryptedPdf",
    "PageOptions",
    "PdfError",
    "PdfWithoutPages",
    "TooManyPages",
    "check_page_count",
    "open_pdf",
    "page_count",
    "preprocess",
    "render_pages",
]

POINTS_PER_INCH = 72
DEFAULT_DPI = 300
MAX_SIDE_PX = 3072  # Gemini downsizes larger images anyway; bigger costs tokens and memory
DEFAULT_WORKERS = 2  # this host has 2 cores

# PDFium is not thread-safe, even across documents: every pdfium call in the process takes this
# lock (opening, rendering, text extraction, closing); only the Pillow work runs in parallel.
# Threads or processes? bench/pages.py on the 2-core host, 25 catalogue pages at 300 DPI (best of
# 3 alternating rounds, host loaded by other jobs): threads 570 ms/page, 2 processes 601 ms/page;
# on 12 synthetic pages with the host idle, threads 226 and processes 193. Processes are not
# clearly faster and each needs its own pdfium and the PDF on disk, so threads it is.
PDFIUM_LOCK = threading.RLock()


_EMPTY_PAGE_TREE = re.compile(rb"/Count\s+0\b")
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b(?!s)")


def _head(source: bytes | Path, limit: int = 1 << 20) -> bytes:
    if isinstance(source, Path):
        with source.open("rb") as file:
            return file.read(limit)
    return source[:limit]


class PdfError(DocumentFailed):
    """The PDF cannot be turned into page images."""

    what = "the PDF cannot be read"
    permanent = True


class EmptyPdf(PdfError):
    """The PDF file is empty (0 bytes): the download or the upload probably failed."""


class CorruptPdf(PdfError):
    """The file is not a readable PDF (damaged, truncated, or not a PDF at all)."""


class EncryptedPdf(PdfError):
    """The PDF is password-protected and cannot be opened."""


class PdfWithoutPages(PdfError):
    """The PDF opens but has no pages."""


class TooManyPages(PdfError):
    """The PDF has more pages than OCR_MAX_PAGES allows."""


def check_page_count(source: bytes | Path, max_pages: int) -> int:
    """The page count, or TooManyPages before anything is rendered or sent."""
    pages = page_count(source)
    if pages > max_pages:
        raise TooManyPages(
            f"the PDF has {pages} pages, more than OCR_MAX_PAGES={max_pages}; raise the setting"
            " if such a document is expected"
        )
    return pages


@dataclass(frozen=True, kw_only=True)
class PageOptions:
    dpi: int = DEFAULT_DPI
    max_side_px: int = MAX_SIDE_PX
    sharpen: bool = True
    jpeg_quality: int = 90


def open_pdf(source: bytes | Path) -> pdfium.PdfDocument:
    """Open a PDF, translating pdfium's failures into a PdfError a person can act on."""
    name = source.name if isinstance(source, Path) else "the PDF"
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    if size == 0:
        raise EmptyPdf(f"{name} is empty (0 bytes): the download or the upload probably failed")
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            code = getattr(exc, "err_code", None)
            if code == pdfium_raw.FPDF_ERR_PASSWORD:
                raise EncryptedPdf(f"{name} is password-protected and cannot be opened") from exc
            # pdfium refuses an empty page tree without a clear error code; read the tree.
            head = _head(source)
            if _EMPTY_PAGE_TREE.search(head) and not _PAGE_OBJECT.search(head):
                raise PdfWithoutPages(f"{name} has no pages") from exc
            raise CorruptPdf(
                f"{name} ({size} bytes) is not a readable PDF: damaged, truncated or not a PDF"
                f" ({exc})"
            ) from exc
        pages = len(document)
    if pages == 0:
        with PDFIUM_LOCK:
            document.close()
        raise PdfWithoutPages(f"{name} opens but has no pages")
    return document


def page_count(source: bytes | Path) -> int:
    document = open_pdf(source)
    with PDFIUM_LOCK:
        try:
            return len(document)
        finally:
            document.close()


def _render(document: pdfium.PdfDocument, index: int, options: PageOptions) -> Image.Image:
    """One page as a grayscale image, at the DPI but never above the size cap."""
    with PDFIUM_LOCK:
        page = document[index]
        try:
            width_pt, height_pt = page.get_size()
            scale = options.dpi / POINTS_PER_INCH
            # Rendering straight at the capped size is faster and lighter than rendering big and
            # shrinking; pdfium resamples the scan itself.
            scale = min(scale, options.max_side_px / max(width_pt, height_pt))
            bitmap = page.render(scale=scale, grayscale=True)
            try:
                # convert() copies, so the image owns its pixels once the bitmap is freed
                image = bitmap.to_pil().convert("L")
            finally:
                bitmap.close()
        finally:
            page.close()
    return image


def preprocess(image: Image.Image, options: PageOptions) -> Image.Image:
    """Grayscale, stretch the contrast of faded ink, optionally sharpen, cap the long side."""
    image = ImageOps.autocontrast(image.convert("L"), cutoff=1)
    if max(image.size) > options.max_side_px:
        image.thumbnail((options.max_side_px, options.max_side_px), Image.Resampling.LANCZOS)
    if options.sharpen:
        image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=3))
    return image


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False)
    return out.getvalue()


def _page_jpeg(document: pdfium.PdfDocument, index: int, options: PageOptions) -> bytes:
    image = preprocess(_render(document, index, options), options)
    return _encode_jpeg(image, options.jpeg_quality)


def render_pages(
    source: bytes | Path,
    options: PageOptions | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    max_pending: int | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield (page number from 1, JPEG bytes) in page order.

    At most `workers` bitmaps exist at once, and at most `max_pending` (default 2 x workers)
    finished JPEGs wait for the consumer: a 300-page PDF never sits in memory as 300 images.
    Pages are only started as the consumer pulls, and closing the generator stops the work.
    """
    options = options or PageOptions()
    max_pending = max_pending or 2 * workers
    if workers < 1 or max_pending < 1:
        raise ValueError("workers and max_pending must be at least 1")
    document = open_pdf(source)
    try:
        with PDFIUM_LOCK:
            total = len(document)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pages") as pool:
            pending: deque[Future[bytes]] = deque()
            next_index = 0
            try:
                for number in range(1, total + 1):
                    while next_index < total and len(pending) < max_pending:
                        pending.append(pool.submit(_page_jpeg, document, next_index, options))
                        next_index += 1
                    yield number, pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        with PDFIUM_LOCK:
            document.close()
