from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sandbox.registry import catalogue, messages, urls
from sandbox.registry.forms import (
    EMPTY_DESIGNATION,
    NO_CHOICE,
    LotForm,
    acte_form,
    acte_results,
    confirm_page,
    lot_form,
    plan_selection,
)
from sandbox.registry.pages import error_block
from sandbox.registry.records import ACTE_TYPES, IndexDocument, Plan
from sandbox.registry.viewer import document_title, page_count
from sandbox.registry.web import form_data, page, require_session, server_error, site

__all__ = ["acte_search", "acte_select", "confirm", "index_search", "plan_search", "plan_select"]

CONFIRM_FROM_PAGES = 4  # index documents this long go through the paid-request confirmation


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _viewer(doc_id: str) -> RedirectResponse:
    return _see(f"{urls.VIEWER}?NoDocmn={doc_id}")


def _read_lot_form(data: dict[str, str]) -> tuple[LotForm, bool]:
    code = data.get("selCircnFoncr", NO_CHOICE)
    circ = catalogue.circonscription_by_code(code)
    form = LotForm(
        circonscription=circ,
        cadastre_code=data.get("selCadst", NO_CHOICE),
        lot=data.get("txtNumrtLot", ""),
        designation_code=data.get("selDesgnSecnd", EMPTY_DESIGNATION),
    )
    return form, circ is not None


def _lookup(form: LotForm, kind: str) -> tuple[str | None, IndexDocument | Plan | None]:
    """(error message, found document): what the site answers to a lot search."""
    circ = form.circonscription
    if circ is None:
        return messages.BAD_CIRCONSCRIPTION, None
    cadastre = next((c for c in circ.cadastres if c.code == form.cadastre_code), None)
    if cadastre is None:
        return messages.NO_MATCH, None
    if not form.lot.strip():
        return messages.LOT_REQUIRED, None
    designation = None
    if form.designation_code != EMPTY_DESIGNATION:
        match = next((d for d in cadastre.designations if d.code == form.designation_code), None)
        if match is None:
            return messages.NO_MATCH, None
        designation = match.name
    find = catalogue.find_index if kind == "index" else catalogue.find_plan
    found = find(circ.name, cadastre.name, form.lot, designation)
    if found is not None:
        return None, found
    known_in = catalogue.lot_circonscriptions(cadastre.name, form.lot)
    if known_in and circ.name not in known_in:
        return messages.LOT_ELSEWHERE, None
    if known_in or kind == "plan":
        return messages.NO_MATCH, None
    return messages.INDEX_NOT_FOUND, None


async def _lot_search(request: Request, kind: str) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    data = await form_data(request)
    form, _ = _read_lot_form(data)
    action, title = (
        (urls.INDEX, "Index des immeubles") if kind == "index" else (urls.PLAN, "Plan cadastral")
    )
    if request.method == "GET" or data.get("txtEtat") != "valdr":
        body = lot_form(form, action=action, index=kind == "index", message=None)
        return page(request, title, body, user=session.username)
    state = site(request)
    state.searches[kind] += 1
    if state.take("fail_next_searches"):
        return server_error(request)
    message, found = _lookup(form, kind)
    if message or found is None:
        body = lot_form(form, action=action, index=kind == "index", message=message)
        return page(request, title, body, user=session.username)
    if isinstance(found, Plan):
        return _see(f"{urls.PLAN_SELECT}?NoPlan={catalogue.PLANS.index(found)}")
    if len(found.pages) >= CONFIRM_FROM_PAGES:
        return _see(f"{urls.CONFIRM}?NoDocmn={found.id}")
    return _viewer(found.id)


async def index_search(request: Request) -> Response:
    return await _lot_search(request, "index")


async def plan_search(request: Request) -> Response:
    return await _lot_search(request, "plan")


async def plan_select(request: Request) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    data = await form_data(request)
    try:
        plan = catalogue.PLANS[int(data.get("NoPlan", ""))]
    except (ValueError, IndexError):
        return _see(urls.PLAN)
    notice = messages.LOT_INACTIVE.format(lot=plan.lot) if plan.inactive else None
    if request.method == "POST":
        chosen = data.get("rdPlan")
        if chosen in {v.id for v in plan.versions}:
            return _see(f"{urls.CONFIRM}?NoDocmn={chosen}")
        notice = messages.CHOOSE_PLAN
    body = plan_selection(str(catalogue.PLANS.index(plan)), plan, notice=notice)
    return page(request, "Sélection du plan cadastral", body, user=session.username)


async def acte_search(request: Request) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    data = await form_data(request)
    circ_code = data.get("selCircnFoncr", NO_CHOICE)
    type_code = data.get("selTypeDocmn", "01")
    numero = data.get("txtNoReqst", "")
    action = request.url.path

    def form(message: str | None) -> Response:
        body = acte_form(
            action=action, circ_code=circ_code, type_code=type_code, numero=numero, message=message
        )
        return page(request, "Acte", body, user=session.username)

    if request.method == "GET" or data.get("txtEtat") != "valdr":
        return form(None)
    state = site(request)
    state.searches["acte"] += 1
    if state.take("fail_next_searches"):
        return server_error(request)
    circ = catalogue.circonscription_by_code(circ_code)
    if circ is None:
        return form(messages.BAD_CIRCONSCRIPTION)
    type_label = ACTE_TYPES.get(type_code)
    if type_label is None:
        return form(messages.NO_MATCH)
    if not numero.strip():
        return form(messages.NUMERO_REQUIRED)
    exact = catalogue.find_acte(circ.name, type_label, numero)
    if len(exact) == 1 and not exact[0].paper_only:
        return _viewer(exact[0].id)
    if exact:
        return page(
            request,
            "Résultat de la recherche",
            acte_results(exact, notice=None),
            user=session.username,
        )
    if any(catalogue.find_acte(circ.name, other, numero) for other in ACTE_TYPES.values()):
        return form(messages.NO_MATCH)
    similar = catalogue.similar_actes(circ.name, type_label, numero)
    if similar:
        body = acte_results(similar, notice=messages.SIMILAR_NUMBERS)
        return page(request, "Résultat de la recherche", body, user=session.username)
    return form(messages.ACTE_NOT_FOUND)


async def acte_select(request: Request) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    data = await form_data(request)
    document = catalogue.document_by_id(data.get("rdDocmn", ""))
    if document is None or document.kind != "acte":
        message = messages.CHOOSE_DOCUMENT
    elif document.paper_only:
        message = messages.PAPER_ONLY
    else:
        return _viewer(document.id)
    return page(request, "Résultat de la recherche", _error_only(message), user=session.username)


def _error_only(message: str) -> str:
    return error_block(message) + f'<p><a href="{urls.ACTE}">Nouvelle recherche</a></p>'


async def confirm(request: Request) -> Response:
    session = require_session(request)
    if isinstance(session, Response):
        return session
    data = await form_data(request)
    document = catalogue.document_by_id(data.get("NoDocmn", ""))
    if document is None:
        return _see(urls.WELCOME)
    if request.method == "POST":
        return _viewer(document.id) if "btnConfr" in data else _see(urls.WELCOME)
    body = confirm_page(document.id, document_title(document), page_count(document))
    return page(request, "Confirmation de la demande", body, user=session.username)
