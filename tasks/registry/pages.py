from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from playwright.async_api import Frame, Locator, Page, Response

from tasks.registry.config import RegistryConfig
from tasks.registry.errors import (
    NoMatchingOption,
    SessionExpired,
    SiteUnavailable,
    error_from_message,
)
from tasks.registry.matching import Option, normalize

__all__ = [
    "ENTRY_LINK",
    "LOGIN_PASSWORD",
    "LOGIN_USER",
    "check_response",
    "click_and_wait",
    "goto",
    "is_logged_out",
    "logged_out_error",
    "raise_for_messages",
    "read_messages",
    "select_matching",
    "submit_button",
]

ENTRY_LINK = (
    "a[href*='pf_14_06_01_reglr'], area[href*='pf_14_06_01_reglr'], img[alt*='Registre foncier']"
)
LOGIN_USER = "#txtVaCodeUtils, input[name=txtVaCodeUtils]"
LOGIN_PASSWORD = "#txtMotPasse, input[name=txtMotPasse], input[type=password]"
ERROR_CELLS = "td.contValErr"
ERROR_TABLES = "table.Cadre:has(img[src*='image_message.gif' i])"
# Texts the registry shows in its error cell that are not errors (DOMAIN.md §2.5, §2.6).
SIMILAR_DOCUMENTS_NOTICE = "semblable"
INACTIVE_LOT_NOTICE = "est inactif"


# A page counts as arrived once its HTML is parsed: a stuck image or script must not hold the run
# until the "load" event (elements are waited for one by one anyway).
WAIT_UNTIL = "domcontentloaded"


def ms(seconds: float) -> float:
    return seconds * 1000


def check_response(response: Response | None, *, context: str) -> None:
    if response is not None and response.status >= 500:
        raise SiteUnavailable(f"{context}: the registry answered HTTP {response.status}")


async def goto(page: Page, url: str, cfg: RegistryConfig, *, context: str) -> None:
    response = await page.goto(url, wait_until=WAIT_UNTIL, timeout=ms(cfg.goto_timeout_s))
    check_response(response, context=context)


async def is_logged_out(page: Page) -> bool:
    """The site sent us to its entry or login page instead of the one asked for."""
    if "pf_14_06_01_reglr" in page.url or re.search(r"/Sirf/?(index\.\w+)?(\?.*)?$", page.url):
        return True
    for frame in page.frames:
        if await frame.locator(LOGIN_USER).count() or await frame.locator(ENTRY_LINK).count():
            return True
    return False


async def read_messages(page: Page) -> list[str]:
    """The registry's validation/error messages, from the page and all its frames."""
    texts: list[str] = []
    for frame in page.frames:
        for selector in (ERROR_CELLS, ERROR_TABLES):
            for text in await frame.locator(selector).all_inner_texts():
                text = " ".join(text.split())
                if text and text not in texts:
                    texts.append(text)
    return texts


async def raise_for_messages(page: Page, *, context: str, ignore: Iterable[str] = ()) -> list[str]:
    """Raise the classified error for a registry message; returns the ignored notices."""
    ignored_markers = [normalize(marker) for marker in ignore]
    notices = []
    for text in await read_messages(page):
        if any(marker in normalize(text) for marker in ignored_markers):
            notices.append(text)
            continue
        raise error_from_message(text, context=context)
    return notices


async def select_matching(
    page: Page,
    selector: str,
    wanted: str,
    matcher: Callable[[str, Iterable[Option]], Option | None],
    cfg: RegistryConfig,
    *,
    what: str,
    timeout_s: float | None = None,
) -> Option:
    """Select the option matching `wanted`; when the select reloads the page, wait for the reload.

    The locator is re-resolved on each use, so no element handle outlives the reload (incident
    6.1 #5, "Execution context was destroyed")."""
    select = page.locator(selector).first
    await select.wait_for(state="visible", timeout=ms(timeout_s or cfg.selector_timeout_s))
    pairs: Sequence[Sequence[str]] = await select.evaluate(
        "s => Array.from(s.options).map(o => [o.value, o.text])"
    )
    options = [Option(value=value, text=text.strip()) for value, text in pairs]
    chosen = matcher(wanted, options)
    if chosen is None:
        real = [o.text for o in options if o.text and o.value.strip() not in ("", "000000")]
        choices = ", ".join(real)
        raise NoMatchingOption(
            f"{what} {wanted!r} is not among the registry's choices ({choices[:300]})",
            registry_message=f"{what} introuvable: {wanted}",
        )
    if await select.input_value() == chosen.value:
        return chosen
    reloads = await select.evaluate("s => !!(s.getAttribute('onchange') || s.onchange)")
    if reloads:
        async with page.expect_navigation(wait_until=WAIT_UNTIL, timeout=ms(cfg.reload_timeout_s)):
            await select.select_option(value=chosen.value)
        if await is_logged_out(page):
            raise logged_out_error(f"{what} reload")
    else:
        await select.select_option(value=chosen.value)
    return chosen


def submit_button(scope: Page | Frame, *labels: str) -> Locator:
    """The first button-like element whose caption is one of `labels`."""
    parts = []
    for label in labels:
        parts += [
            f"input[type=submit][value*='{label}' i]",
            f"input[type=button][value*='{label}' i]",
            f"input[type=image][alt*='{label}' i]",
            f"button:has-text('{label}')",
        ]
    return scope.locator(", ".join(parts)).first


async def click_and_wait(page: Page, target: Locator, timeout_s: float, *, context: str) -> None:
    """Click something that loads a new page in the main frame and wait for it to load."""
    async with page.expect_navigation(wait_until=WAIT_UNTIL, timeout=ms(timeout_s)) as navigation:
        await target.click(timeout=ms(timeout_s))
    check_response(await navigation.value, context=context)


def logged_out_error(context: str) -> SessionExpired:
    return SessionExpired(f"{context}: the registry session expired (sent back to the login page)")
