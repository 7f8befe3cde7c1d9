from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from sandbox.gemini.content import Blob, Request
from sandbox.gemini.fingerprint import PageBook, pdf_page_images
from sandbox.gemini.formats import BOOST_MARKER, boost_text, conform
from tasks.pages import images as page_images
from tasks.pages import index_text
from tasks.pages.index_rows import IndexPage

__all__ = ["UNREADABLE", "Oracle", "pdf_text"]

UNREADABLE = "[ILLISIBLE] Cette page n'a pas pu être lue : aucune ligne n'est extraite."
UNREADABLE_PAGE = IndexPage(template="Inconnu", rows=[])


def pdf_title(data: bytes) -> str:
    document = page_images.open_pdf(data)
    with page_images.PDFIUM_LOCK:
        try:
            return document.get_metadata_value("Title")
        finally:
            document.close()


def pdf_text(data: bytes) -> list[str]:
    """The text layer of each page ('' for a scanned page)."""
    document = page_images.open_pdf(data)
    with page_images.PDFIUM_LOCK:
        try:
            texts = []
            for index in range(len(document)):
                page = document[index]
                textpage = page.get_textpage()
                texts.append(textpage.get_text_bounded().replace("\r\n", "\n").strip())
                textpage.close()
                page.close()
            return texts
        finally:
            document.close()


@dataclass(frozen=True)
class _Read:
    """What the stand-in 'saw' in one document part."""

    text: str
    index_pages: list[IndexPage | None]  # per page, None when the page was not recognised
    documents: tuple[str, ...] = ()  # what was recognised: "<document id>#<page>", or a title


class Oracle:
    """Answers with the true content of the documents the registry stand-in made."""

    def __init__(self, book: PageBook) -> None:
        self.book = book

    def answer(self, request: Request, documents: list[Blob]) -> tuple[str, list[str]]:
        """The answer's text, and what it read (for the request log)."""
        if not documents and BOOST_MARKER in request.prompt:
            return self._boost(request), []
        reads = [self._read(blob) for blob in documents]
        if not reads:
            nothing = "Aucun document ni image fourni : rien à transcrire."
            return self._shape(request, nothing, []), []
        text = "\n\n".join(r.text for r in reads)
        index_pages = [p for r in reads for p in r.index_pages]
        return self._shape(request, text, index_pages), [d for r in reads for d in r.documents]

    def _read(self, blob: Blob) -> _Read:
        if blob.data is None:
            return _Read(UNREADABLE, [None])
        if blob.mime_type == "application/pdf" or blob.data.startswith(b"%PDF"):
            return self._read_pdf(blob.data)
        try:
            image = Image.open(io.BytesIO(blob.data))
            image.load()
        except (UnidentifiedImageError, OSError):
            return _Read(UNREADABLE, [None])
        known = self.book.match(image)
        if known is None:
            return _Read(UNREADABLE, [None])
        return _Read(
            index_text.render_page(known.number, known.page),
            [known.page],
            (f"{known.document_id}#{known.number}",),
        )

    def _read_pdf(self, data: bytes) -> _Read:
        try:
            texts = pdf_text(data)
        except page_images.PdfError as exc:
            return _Read(f"[ILLISIBLE] Le document ne s'ouvre pas : {exc}", [None])
        if any(texts):  # a text PDF (actes): its text is the transcription
            return _Read("\n\n".join(texts), [], (pdf_title(data),))
        found: list[IndexPage | None] = []
        blocks, seen = [], []
        for number, image in enumerate(pdf_page_images(data), start=1):
            known = self.book.match(image)
            found.append(known.page if known else None)
            body = index_text.render_page(number, known.page) if known else UNREADABLE
            blocks.append(body if known else f"--- Page {number} ---\n{body}")
            if known:
                seen.append(f"{known.document_id}#{known.number}")
        return _Read("\n\n".join(blocks), found, tuple(seen))

    def _shape(self, request: Request, text: str, index_pages: list[IndexPage | None]) -> str:
        if not request.wants_json:
            return text
        dumped = [(p or UNREADABLE_PAGE).model_dump(mode="json") for p in index_pages]
        context: dict[str, Any] = {"text": text, "pages": dumped}
        if len(dumped) == 1:
            context = {**dumped[0], **context}
        if request.schema is None:
            return json.dumps(dumped[0] if len(dumped) == 1 else context, ensure_ascii=False)
        return json.dumps(conform(context, request.schema), ensure_ascii=False)

    def _boost(self, request: Request) -> str:
        boosted, corrections = boost_text(request.prompt)
        if not request.wants_json:
            return boosted
        try:
            found = [p.model_dump(mode="json") for p in index_text.parse_pages(boosted)]
        except ValueError:  # not the index layout (or incomplete rows): text only
            found = []
        context = {"text": boosted, "pages": found, "corrections": corrections}
        if request.schema is None:
            return json.dumps(context, ensure_ascii=False)
        return json.dumps(conform(context, request.schema), ensure_ascii=False)
