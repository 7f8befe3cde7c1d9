from __future__ import annotations

import logging

from playwright.async_api import Page

from tasks.registry.config import RegistryConfig
from tasks.registry.errors import DocumentNotFound, NoMatchingOption, PermanentRegistryError
from tasks.registry.matching import Option, match_cadastre, match_option
from tasks.registry.models import DocumentSource, Selections
from tasks.registry.pages import (
    INACTIVE_LOT_NOTICE,
    SIMILAR_DOCUMENTS_NOTICE,
    click_and_wait,
    goto,
    is_logged_out,
    logged_out_error,
    ms,
    raise_for_messages,
    select_matching,
    submit_button,
)
from tasks.request import Request

__all__ = ["ACTE_TYPE_FALLBACK", "SEARCH_PATHS", "search"]

logger = logging.getLogger(__name__)

SEARCH_PATHS: dict[DocumentSource, str] = {
    "index": "Script/13_01_11/pf_13_01_11_02_indx_immbl.asp",
    "acte": "Script/13_01_11/pf_13_01_11_08_reqst.asp",
    "plan_cadastraux": "Script/13_01_11/pf_13_01_11_10_plan_cadst.asp",
}
ACTE_TYPE_FALLBACK = ("Acte", "Acte divers", "Radiation")  # DOMAIN.md §2.9
DEFAULT_ACTE_TYPE = "Acte"


async def open_search(page: Page, source: DocumentSource, cfg: RegistryConfig) -> None:
    path = SEARCH_PATHS[source]
    await goto(page, cfg.url(path), cfg, context=f"{source} search page")
    if await is_logged_out(page) or path.rsplit("/", 1)[1] not in page.url:
        raise logged_out_error(f"{source} search page")
    await page.locator("#selCircnFoncr").wait_for(
        state="visible", timeout=ms(cfg.first_selector_timeout_s)
    )


async def _select_circonscription(page: Page, job: Request, cfg: RegistryConfig) -> Option:
    return await select_matching(
        page,
        "#selCircnFoncr",
        job.circonscription,
        match_option,
        cfg,
        what="circonscription foncière",
        timeout_s=cfg.first_selector_timeout_s,
    )


async def _submit(page: Page, cfg: RegistryConfig, label: str, *, context: str) -> None:
    await click_and_wait(page, submit_button(page, label), cfg.submit_timeout_s, context=context)
    if await is_logged_out(page):
        raise logged_out_error(context)


async def _search_by_lot(page: Page, job: Request, cfg: RegistryConfig) -> Selections:
    """Index and plan: circonscription, cadastre, lot, désignation (DOMAIN.md §2.4, §2.6)."""
    context = f"{job.document_source} search"
    await open_search(page, job.document_source, cfg)
    circonscription = await _select_circonscription(page, job, cfg)
    cadastre = await select_matching(
        page,
        "#selCadst",
        job.cadastre or "Cadastre du Québec",
        match_cadastre,
        cfg,
        what="cadastre",
    )
    await page.locator("#txtNumrtLot").fill("".join(job.document_number.split()))
    designation = None
    if job.designation_secondaire:
        designation = await select_matching(
            page,
            "#selDesgnSecnd",
            job.designation_secondaire,
            match_option,
            cfg,
            what="désignation secondaire",
        )
    await _submit(page, cfg, "Soumettre", context=context)
    ignore = [INACTIVE_LOT_NOTICE] if job.document_source == "plan_cadastraux" else []
    notices = await raise_for_messages(page, context=context, ignore=ignore)
    if notices:
        logger.info("registry notice", extra={"action": "registry_notice", "notice": notices[0]})
    return Selections(
        circonscription=circonscription.text,
        cadastre=cadastre.text,
        designation_secondaire=designation.text if designation else None,
    )


def acte_types_to_try(requested: str | None) -> list[str]:
    first = requested or DEFAULT_ACTE_TYPE
    return [first] + [t for t in ACTE_TYPE_FALLBACK if t.casefold() != first.casefold()]


async def _search_acte_as(
    page: Page, job: Request, acte_type: str, cfg: RegistryConfig
) -> Selections:
    context = f"acte search ({acte_type})"
    await open_search(page, "acte", cfg)
    circonscription = await _select_circonscription(page, job, cfg)
    chosen_type = await select_matching(
        page, "#selTypeDocmn", acte_type, match_option, cfg, what="type de document"
    )
    await page.locator("#txtNoReqst").fill("".join(job.document_number.split()))
    await _submit(page, cfg, "Rechercher", context=context)
    await raise_for_messages(page, context=context, ignore=[SIMILAR_DOCUMENTS_NOTICE])
    return Selections(circonscription=circonscription.text, acte_type=chosen_type.text)


async def _search_acte(page: Page, job: Request, cfg: RegistryConfig) -> Selections:
    """Try the requested type, then Acte, Acte divers, Radiation (DOMAIN.md §2.9)."""
    failures: list[PermanentRegistryError] = []
    for acte_type in acte_types_to_try(job.acte_type):
        try:
            return await _search_acte_as(page, job, acte_type, cfg)
        except NoMatchingOption as exc:
            if "type de document" not in str(exc):
                raise  # a wrong circonscription will not get better with another type
            failures.append(exc)
        except DocumentNotFound as exc:
            failures.append(exc)
            logger.info(
                "acte not found under type, trying the next",
                extra={"action": "acte_type_fallback", "acte_type": acte_type},
            )
    last = failures[-1]
    tried = ", ".join(acte_types_to_try(job.acte_type))
    raise DocumentNotFound(
        f"acte {job.document_number}: not found as any of {tried}: {last.registry_message}",
        registry_message=last.registry_message,
    )


async def search(page: Page, job: Request, cfg: RegistryConfig) -> Selections:
    """Fill and submit the search form for `job`; the page is then on the result."""
    if job.document_source == "acte":
        return await _search_acte(page, job, cfg)
    return await _search_by_lot(page, job, cfg)
