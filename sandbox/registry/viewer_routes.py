from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from functools import lru_cache

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from sandbox.registry import catalogue, urls
from sandbox.registry.documents import index_page_images, plan_image
from sandbox.registry.records import Document, IndexDocument, PlanVersion
from sandbox.registry.viewer import document_title, frameset, menu_frame, page_frame
from sandbox.registry.web import require_session, site

__all__ = ["page_image", "save_document", "viewer_frame", "viewer_menu", "viewer_page"]

PREVIEW_WIDTH_PX = 825


def _document(request: Request) -> Document | Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    document = catalogue.document_by_id(request.query_params.get("NoDocmn", ""))
    if document is None or getattr(document, "paper_only", False):
        return RedirectResponse(urls.WELCOME, status_code=302)
    return document


async def viewer_frame(request: Request) -> Response:
    document = _document(request)
    if isinstance(document, Response):
        return document
    site(request).pages += 1
    return HTMLResponse(frameset(document.id))


async def viewer_menu(request: Request) -> Response:
    document = _document(request)
    if isinstance(document, Response):
        return document
    return HTMLResponse(menu_frame(document.id, document_title(document)))


async def viewer_page(request: Request) -> Response:
    document = _document(request)
    if isinstance(document, Response):
        return document
    return HTMLResponse(page_frame(document))


@lru_cache(maxsize=64)
def _preview_jpeg(document: Document, number: int) -> bytes:
    if isinstance(document, IndexDocument):
        images = index_page_images(document)
        image = images[min(max(number, 1), len(images)) - 1]
    elif isinstance(document, PlanVersion):
        image = plan_image(document).copy()
    else:
        raise ValueError("actes have no page images")
    image.thumbnail((PREVIEW_WIDTH_PX, PREVIEW_WIDTH_PX))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


async def page_image(request: Request) -> Response:
    document = _document(request)
    if isinstance(document, Response):
        return document
    try:
        number = int(request.query_params.get("page", "1"))
        jpeg = await run_in_threadpool(_preview_jpeg, document, number)
    except ValueError:
        return Response(status_code=404)
    return Response(jpeg, media_type="image/jpeg")


async def _half_then_hang(data: bytes) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    await asyncio.Event().wait()  # ends only when the client goes away


async def save_document(request: Request) -> Response:
    document = _document(request)
    if isinstance(document, Response):
        return document
    state = site(request)
    data = await run_in_threadpool(catalogue.render_pdf, document)
    headers = {
        "Content-Disposition": f'{state.faults.download_mode}; filename="{document.id}.pdf"',
        "Cache-Control": "private",
    }
    if state.take("stall_next_downloads"):
        state.stalled_downloads += 1
        headers["Content-Length"] = str(len(data))
        return StreamingResponse(
            _half_then_hang(data), media_type="application/pdf", headers=headers
        )
    state.downloads[document.id] += 1
    return Response(data, media_type="application/pdf", headers=headers)
