from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox.registry import pages, urls
from sandbox.registry.state import Session, SiteState

__all__ = [
    "SESSION_COOKIE",
    "form_data",
    "page",
    "require_session",
    "server_error",
    "site",
]

SESSION_COOKIE = "ASPSESSIONIDSIRF"


def site(request: Request) -> SiteState:
    return request.app.state.site


async def form_data(request: Request) -> dict[str, str]:
    # The site's forms are all urlencoded; parsing them here spares a python-multipart dependency.
    if request.method != "POST":
        return dict(request.query_params)
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def require_session(request: Request) -> Session | Response:
    """The caller's live session, or the redirect to the entry page an expired one gets."""
    session = site(request).use_session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return RedirectResponse(urls.ENTRY, status_code=302)
    return session


def page(
    request: Request, title: str, body: str, *, user: str | None = None, status_code: int = 200
) -> HTMLResponse:
    state = site(request)
    state.pages += 1
    stuck = state.take("stuck_next_pages")
    return HTMLResponse(pages.layout(title, body, user=user, stuck=stuck), status_code=status_code)


def server_error(request: Request) -> HTMLResponse:
    site(request).server_errors += 1
    return HTMLResponse(pages.server_error_page(), status_code=500)
