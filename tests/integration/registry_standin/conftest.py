from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Frame, Page, sync_playwright

from sandbox.registry import urls
from sandbox.registry.catalogue import ACCOUNTS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
SAVE_LINK = 'a[title="Sauvegarder ou imprimer le document"]'


# `registry` (the session's stand-in, reset for each test) comes from tests/conftest.py.


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, locale="fr-CA")
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


class Site:
    """The steps a registry driver takes, written the way DOMAIN.md §2 describes them."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page, self.base_url = page, base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def login(self, username: str = "agent01", password: str | None = None) -> None:
        if password is None:
            password = next(a.password for a in ACCOUNTS if a.username == username)
        self.page.goto(self.url(urls.ENTRY))
        self.page.click("a[href*=pf_14_06_01_reglr]")
        self.page.get_by_label("Code d'utilisateur").fill(username)
        self.page.get_by_label("Mot de passe").fill(password)
        self.page.get_by_role("button", name="Soumettre").click()
        self.page.wait_for_load_state()

    def select_reloading(self, selector: str, value: str) -> None:
        with self.page.expect_navigation():
            self.page.select_option(selector, value)

    def lot_search(
        self, path: str, circ: str, cadastre: str, lot: str, designation: str = ""
    ) -> None:
        self.page.goto(self.url(path))
        self.select_reloading("#selCircnFoncr", circ)
        self.select_reloading("#selCadst", cadastre)
        self.page.fill("#txtNumrtLot", lot)
        if designation:
            self.page.select_option("#selDesgnSecnd", label=designation)
        self.page.click("input[type=submit][value*=Soumettre]")
        self.page.wait_for_load_state()

    def acte_search(self, circ: str, type_label: str, numero: str, path: str = urls.ACTE) -> None:
        self.page.goto(self.url(path))
        self.page.select_option("#selCircnFoncr", circ)
        self.page.select_option("#selTypeDocmn", label=type_label)
        self.page.fill("#txtNoReqst", numero)
        self.page.click("input[value*=Rechercher]")
        self.page.wait_for_load_state()

    def error_text(self) -> str:
        self.page.wait_for_load_state()  # a submit's answer may still be on its way
        errors = self.page.locator("td.contValErr")
        return errors.inner_text() if errors.count() else ""

    def menu(self) -> Frame:
        self.page.wait_for_selector("frame[name=menu]", state="attached")
        frame = self.page.frame(name="menu")
        assert frame is not None
        frame.wait_for_selector(SAVE_LINK)
        return frame

    def download_attachment(self) -> bytes:
        with self.page.expect_download() as info:
            self.menu().click(SAVE_LINK)
        path = info.value.path()
        with open(path, "rb") as handle:
            return handle.read()

    def download_inline(self) -> bytes:
        """Inline mode: the PDF opens in the page frame; fetch that URL with the session."""
        menu = self.menu()
        with self.page.expect_response(lambda r: "impri_sauvg" in r.url) as info:
            menu.click(SAVE_LINK)
        response = info.value
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"].startswith("inline")
        return self.page.context.request.get(response.url).body()


@pytest.fixture
def site(page: Page, registry: str) -> Site:
    return Site(page, registry)
