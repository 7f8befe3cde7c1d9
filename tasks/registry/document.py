from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from playwright.async_api import BrowserContext, Download, Frame, Locator, Page, Response
from playwright.async_api import Error as PlaywrightError

from tasks.registry.config import RegistryConfig
from tasks.registry.errors import DownloadStalled, PermanentRegistryError, RegistryTimeout
from tasks.registry.models import DocumentSource
from tasks.registry.pages import (
    INACTIVE_LOT_NOTICE,
    SIMILAR_DOCUMENTS_NOTICE,
    WAIT_UNTIL,
    click_and_wait,
    is_logged_out,
    logged_out_error,
    ms,
    raise_for_messages,
    submit_button,
)

__all__ = ["PdfCatcher", "fetch_pdf", "open_document"]

logger = logging.getLogger(__name__)

CONFIRMATION_BUTTON = "#btnConfr, input[name=btnConfr], input[value='Confirmer']"
PAPER_ONLY_ICON = "img[src*='BPD.GIF' i]"
# The document's toolbar link, most specific first (DOMAIN.md §2.10 step 4).
SAVE_LINKS = (
    "a[title='Sauvegarder ou imprimer le document']",
    "a:has-text('Sauvegarder')",
    "td.menuBoutnCentr a",
    "td.fondOrang a",
    "a[href*='impri_sauvg']",
    "a[onmouseup*='fRechrDocmnPDF']",
)
MAX_INTERMEDIATE_PAGES = 6


def _document_shown(page: Page) -> bool:
    """The viewer frameset is up: a `page` or `menu` frame, or a child frame showing a Docmn URL
    (the path only: intermediate pages carry NoDocmn= in their query string)."""
    return any(
        frame.name in ("page", "menu") or "Docmn" in frame.url.split("?", 1)[0]
        for frame in page.frames
        if frame is not page.main_frame
    )


async def _choose_radio(page: Page, source: DocumentSource) -> bool:
    """On a result list, tick the right radio: the last (most recent) plan, or the first acte row
    not marked paper-only (BPD.GIF). False when the page has no radio."""
    radios = page.locator("input[type=radio]")
    count = await radios.count()
    if count == 0:
        return False
    if source == "plan_cadastraux":
        await radios.nth(count - 1).check()
        return True
    rows = page.locator("tr").filter(has=page.locator("input[type=radio]"))
    for i in range(await rows.count()):
        row = rows.nth(i)
        if await row.locator(PAPER_ONLY_ICON).count() == 0:
            await row.locator("input[type=radio]").first.check()
            return True
    raise PermanentRegistryError(
        "document disponible sur support papier seulement: the registry has no electronic copy"
        " (every result is marked BPD.GIF)",
        registry_message="Document disponible sur support papier seulement",
    )


async def open_document(
    page: Page, source: DocumentSource, cfg: RegistryConfig, catcher: PdfCatcher
) -> None:
    """From the search result to the document frameset: result lists, plan selection and
    confirmation pages are passed through (DOMAIN.md §2.5 step 6, §2.6 steps 4-5, §2.10 step 1)."""
    deadline = time.monotonic() + cfg.document_load_timeout_s
    for _ in range(MAX_INTERMEDIATE_PAGES):
        while not (_document_shown(page) or catcher.pending):
            if await is_logged_out(page):
                raise logged_out_error(f"{source} document")
            ignore = [SIMILAR_DOCUMENTS_NOTICE, INACTIVE_LOT_NOTICE]
            await raise_for_messages(page, context=f"{source} document", ignore=ignore)
            if "confr_demnd" in page.url or await page.locator(CONFIRMATION_BUTTON).count():
                button = page.locator(CONFIRMATION_BUTTON).first
                await click_and_wait(
                    page, button, cfg.confirmation_timeout_s, context="confirmation page"
                )
                break
            if await _choose_radio(page, source):
                button = submit_button(page, "Soumettre", "Continuer", "Sélectionner")
                await click_and_wait(page, button, cfg.submit_timeout_s, context="result list")
                break
            if time.monotonic() > deadline:
                raise RegistryTimeout(
                    f"{source} document did not load after {cfg.document_load_timeout_s:.0f} s"
                )
            await asyncio.sleep(cfg.document_poll_interval_s)
        else:
            return
    raise PermanentRegistryError(f"{source}: too many intermediate pages before the document")


def _is_pdf_response(response: Response) -> bool:
    if not response.url.startswith("http"):
        return False  # the PDF viewer re-serves the PDF from chrome-extension://: unfetchable
    headers = response.headers
    if "attachment" in headers.get("content-disposition", "").lower():
        return False  # it becomes a download event instead; its body is not readable here
    return "application/pdf" in headers.get("content-type", "").lower() or (
        response.url.split("?", 1)[0].lower().endswith(".pdf")
    )


class PdfCatcher:
    """Collects every PDF the context receives, as a download event on any page or as an inline
    response (e.g. shown in the `page` frame); attach it before the document is requested."""

    def __init__(self, context: BrowserContext) -> None:
        self._context = context
        self._queue: asyncio.Queue[Download | Response] = asyncio.Queue()
        self.seen: list[str] = []
        context.on("page", self._watch)
        for page in context.pages:
            self._watch(page)
        context.on("response", self._on_response)

    @property
    def pending(self) -> bool:
        return not self._queue.empty()

    def _watch(self, page: Page) -> None:
        page.on("download", self._queue.put_nowait)

    def _on_response(self, response: Response) -> None:
        if response.ok and _is_pdf_response(response):
            self._queue.put_nowait(response)

    async def _read(self, item: Download | Response) -> bytes | None:
        if isinstance(item, Download):
            self.seen.append(f"download {item.url}")
            if await item.failure():
                return None
            return Path(await item.path()).read_bytes()
        self.seen.append(f"response {item.url}")
        try:
            body = await item.body()
        except PlaywrightError:  # body not kept: the page navigated away
            body = b""
        if body.startswith(b"%PDF"):
            return body
        # Chromium hands an inline PDF to its viewer and reports the viewer's page as the body
        fetched = await self._context.request.get(item.url)
        return await fetched.body() if fetched.ok else None

    async def next_pdf(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                return None
            try:
                body = await asyncio.wait_for(self._read(item), remaining)
            except TimeoutError:
                return None  # a download that started but never finished: stalled
            if body and body.startswith(b"%PDF"):
                return body
        return None


async def _find_save_link(page: Page, cfg: RegistryConfig) -> Locator | None:
    frames: list[Page | Frame] = [page, *[f for f in page.frames if f.name == "menu"]]
    frames += [f for f in page.frames if f not in frames and f is not page.main_frame]
    deadline = time.monotonic() + cfg.save_link_timeout_s
    while time.monotonic() < deadline:
        if await is_logged_out(page):
            raise logged_out_error("document viewer")
        for scope in frames:
            for selector in SAVE_LINKS:
                link = scope.locator(selector).first
                if await link.count():
                    return link
        await asyncio.sleep(cfg.document_poll_interval_s)
    return None


async def _fetch_frame_documents(context: BrowserContext, page: Page) -> bytes | None:
    """Last resort: the `page` frame may already show the PDF; fetch its URL with the context's
    cookies."""
    for frame in page.frames:
        if frame is page.main_frame or not frame.url.startswith("http"):
            continue
        response = await context.request.get(frame.url)
        body = await response.body() if response.ok else b""
        if body.startswith(b"%PDF"):
            return body
    return None


async def fetch_pdf(
    context: BrowserContext, page: Page, catcher: PdfCatcher, cfg: RegistryConfig
) -> bytes:
    """The document's PDF bytes: click the save link, then take whichever comes first of a
    download event or an inline PDF response (DOMAIN.md §2.10)."""
    await page.wait_for_load_state(WAIT_UNTIL, timeout=ms(cfg.goto_timeout_s))
    link = None if catcher.pending else await _find_save_link(page, cfg)
    if link is not None:
        await link.click(timeout=ms(cfg.selector_timeout_s))
    pdf = await catcher.next_pdf(cfg.download_timeout_s if link is not None else 1)
    if pdf is None:
        pdf = await _fetch_frame_documents(context, page)
    if pdf is None and await is_logged_out(page):
        raise logged_out_error("document download")
    if pdf is None:
        found = "clicked the save link" if link is not None else "found no save link"
        raise DownloadStalled(
            f"the document page loaded and {found}, but no PDF came"
            f" (seen: {', '.join(catcher.seen) or 'nothing'})"
        )
    return pdf
