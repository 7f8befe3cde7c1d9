from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.registry import catalogue, messages, pages, search, urls, viewer_routes
from sandbox.registry.faults import Faults
from sandbox.registry.state import SiteState
from sandbox.registry.web import SESSION_COOKIE, form_data, require_session, site

__all__ = ["create_app"]

# A 1x1 transparent GIF stands in for every image of the old site (BPD.GIF included).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CSS = """body { font-family: Arial, Helvetica, sans-serif; font-size: 10pt; }
.titrePage { font-size: 14pt; font-weight: bold; color: #003366; }
.contValErr { color: #CC0000; font-weight: bold; }
.menuBoutnCentr, .fondOrang { background-color: #FF9933; }
.entetTabl { background-color: #DDE6F0; }
"""


class Latency:
    """Adds the configured latency to every /Sirf/ page (images and styles stay fast)."""

    def __init__(self, app: ASGIApp, state: SiteState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        delay = self.state.faults.latency_s
        path = scope.get("path", "")
        static = path.startswith((urls.IMAGES, urls.CSS))
        if scope["type"] == "http" and path.startswith(urls.ROOT) and not static:
            self.state.responses += 1
            if delay > 0:
                await asyncio.sleep(delay)
        await self.app(scope, receive, send)


def _html(request: Request, render: Callable[[bool], str]) -> Response:
    """A whole page from pages.py; render gets whether this page must never finish loading."""
    state = site(request)
    state.pages += 1
    return HTMLResponse(render(state.take("stuck_next_pages")))


async def entry(request: Request) -> Response:
    return _html(request, lambda stuck: pages.entry_page(stuck=stuck))


async def login(request: Request) -> Response:
    state = site(request)
    if request.method == "GET":
        return _html(request, lambda stuck: pages.login_page(stuck=stuck))
    data = await form_data(request)
    username = data.get("txtVaCodeUtils", "").strip()
    account = next((a for a in catalogue.ACCOUNTS if a.username == username), None)
    error = None
    if account is None or account.password != data.get("txtMotPasse", ""):
        error = messages.BAD_LOGIN
    elif not account.active:
        error = messages.ACCOUNT_DISABLED
    if error:
        state.login_failures[username] += 1
        return _html(request, lambda stuck: pages.login_page(error, username=username, stuck=stuck))
    session = state.login(username)
    response = RedirectResponse(urls.WELCOME, status_code=303)
    response.set_cookie(SESSION_COOKIE, session.id, path=urls.ROOT, httponly=True)
    return response


async def welcome(request: Request) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    return _html(request, lambda stuck: pages.welcome_page(session.username, stuck=stuck))


async def logout(request: Request) -> Response:
    site(request).logout(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(urls.ENTRY, status_code=302)
    response.delete_cookie(SESSION_COOKIE, path=urls.ROOT)
    return response


async def image(request: Request) -> Response:
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "max-age=3600"})


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()  # ends only when the client goes away
    yield b""


async def stuck_pixel(request: Request) -> Response:
    headers = {"Content-Length": str(len(GIF)), "Cache-Control": "no-store"}
    return StreamingResponse(_never(), media_type="image/gif", headers=headers)


async def stylesheet(request: Request) -> Response:
    return Response(CSS, media_type="text/css")


async def control_faults(request: Request) -> Response:
    state = site(request)
    if request.method == "DELETE":
        state.faults = Faults()
    elif request.method == "POST":
        try:
            state.faults.update(await request.json())
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(state.faults.as_dict())


async def control_counters(request: Request) -> Response:
    state = site(request)
    if request.method == "DELETE":
        state.reset_counters()
    return JSONResponse(state.counters())


async def control_expire(request: Request) -> Response:
    return JSONResponse({"expired": site(request).expire_all()})


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True, "documents": len(catalogue.DOCUMENTS)})


def _routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/", lambda r: RedirectResponse(urls.ENTRY)),
        Route(urls.ROOT, lambda r: RedirectResponse(urls.ENTRY)),
        Route(urls.ENTRY, entry),
        Route(urls.LOGIN, login, methods=both),
        Route(urls.WELCOME, welcome),
        Route(urls.LOGOUT, logout),
        Route(urls.INDEX, search.index_search, methods=both),
        Route(urls.PLAN, search.plan_search, methods=both),
        Route(urls.PLAN_SELECT, search.plan_select, methods=both),
        Route(urls.ACTE, search.acte_search, methods=both),
        Route(urls.ACTE_FALLBACK, search.acte_search, methods=both),
        Route(urls.ACTE_SELECT, search.acte_select, methods=["POST"]),
        Route(urls.CONFIRM, search.confirm, methods=both),
        Route(urls.VIEWER, viewer_routes.viewer_frame),
        Route(urls.MENU_FRAME, viewer_routes.viewer_menu),
        Route(urls.PAGE_FRAME, viewer_routes.viewer_page),
        Route(urls.PAGE_IMAGE, viewer_routes.page_image),
        Route(urls.SAVE, viewer_routes.save_document),
        Route(urls.STUCK_PIXEL, stuck_pixel),
        Route(urls.IMAGES + "/{name}", image),
        Route(urls.CSS, stylesheet),
        Route(f"{urls.CONTROL}/health", health),
        Route(f"{urls.CONTROL}/faults", control_faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{urls.CONTROL}/counters", control_counters, methods=["GET", "DELETE"]),
        Route(f"{urls.CONTROL}/sessions/expire", control_expire, methods=["POST"]),
    ]


async def _gone(request: Request, exc: Exception) -> Response:
    """A client that went away mid-request (its process was killed) gets nothing, as from IIS."""
    return Response(status_code=499)


def create_app(faults: dict[str, Any] | None = None) -> Starlette:
    state = SiteState()
    if faults:
        state.faults.update(faults)
    app = Starlette(routes=_routes(), exception_handlers={ClientDisconnect: _gone})
    app.state.site = state
    app.add_middleware(Latency, state=state)
    return app
