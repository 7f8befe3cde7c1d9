"""The Prefect UI served by the test's Prefect server, driven in headless Chromium the way an
operator uses it: the sidebar, the runs search box, a run's tabs, an artifact's card. Every step
leaves a screenshot, and every page's text is kept so a test can look for what must not be
there (secrets)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tasks.registry.browser import CHROMIUM_ARGS, chromium_executable

STEP_TIMEOUT_MS = 60_000  # a loaded 2-core machine renders the SPA slowly
RUN_LINK = 'a[href*="/runs/flow-run/"]'  # a flow run's name, wherever the UI lists runs


def check_ui_served(base_url: str, api_url: str) -> None:
    """Fail at once, saying why, when the server does not serve its UI or points it elsewhere."""
    page = httpx.get(f"{base_url}/", follow_redirects=True, timeout=10)
    assert page.status_code == 200 and "<title>Prefect" in page.text, (
        f"the Prefect server at {base_url} does not serve its UI (HTTP {page.status_code}):"
        " is PREFECT_UI_ENABLED / PREFECT_SERVER_UI_ENABLED false?"
    )
    settings = httpx.get(f"{base_url}/ui-settings", timeout=10).json()
    assert settings["api_url"] == api_url, (
        f"the UI at {base_url} calls the API at {settings['api_url']}, not {api_url}:"
        " PREFECT_UI_API_URL is not the server's own API"
    )


class PrefectUI:
    def __init__(self, page: Page, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.seen: list[str] = []  # the text of every page looked at
        self._count = 0

    def shot(self, name: str, showing: Locator | None = None) -> Path:
        """A screenshot, once `showing` is on screen: the UI's refetches briefly put skeletons
        in place of what was already checked (a markdown artifact)."""
        self.page.wait_for_load_state("networkidle")
        if showing is not None:
            expect(showing).to_be_visible()
        self._count += 1
        path = self.shots / f"{self._count:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.seen.append(self.page.locator("body").inner_text())
        return path

    def home(self) -> None:
        """The address an operator opens: the server's root, whichever UI it sends them to."""
        self.page.goto(f"{self.base_url}/")
        expect(self.nav("Runs")).to_be_visible()

    def nav(self, section: str) -> Locator:
        return self.page.get_by_role("link", name=section, exact=True).first

    def go(self, section: str) -> None:
        self.nav(section).click()
        self.page.wait_for_load_state("networkidle")

    def search_runs(self, typed: str, expected: list[str]) -> None:
        """Type into the runs page's search box as a person does, until it lists exactly the
        runs named `expected` (a name repeats for each attempt)."""
        self.go("Runs")
        box = self.page.get_by_placeholder("Search by flow run name")
        box.click()
        box.press_sequentially(typed, delay=40)
        expect(self.run_links()).to_have_count(len(expected))
        assert sorted(self.run_links().all_inner_texts()) == sorted(expected)

    def run_links(self) -> Locator:
        return self.page.locator(RUN_LINK)

    def filter_state_name(self, name: str) -> None:
        """A runs list's "State names" filter (the runs page's, a deployment's), left with `name`
        only."""
        self.page.get_by_text("All run states", exact=True).click()
        self.page.get_by_placeholder("Search state names...").fill(name)
        self.page.get_by_role("menuitem", name=name, exact=True).click()
        self.page.keyboard.press("Escape")
        self.page.wait_for_load_state("networkidle")

    def open_run(self, run_id: object, name: str) -> None:
        """Click the listed run (several attempts of a document share its name)."""
        self.page.locator(f'a[href*="/runs/flow-run/{run_id}"]').first.click()
        expect(self.page.get_by_role("tab", name="Artifacts")).to_be_visible()
        expect(self.page.get_by_text(name, exact=True).first).to_be_visible()

    def tab(self, name: str) -> Locator:
        """Open a tab of the page (a run's, a pool's, a deployment's); its panel."""
        self.page.get_by_role("tab", name=name, exact=True).click()
        panel = self.page.get_by_role("tabpanel")
        expect(panel).to_be_visible()
        self.page.wait_for_load_state("networkidle")
        return panel

    def open_artifact(self, text: str) -> None:
        """Click the artifact card showing `text` (its key, or its description)."""
        self.page.locator('a[href*="/artifacts/artifact/"]').filter(has_text=text).first.click()
        expect(self.page.get_by_role("link", name="Raw", exact=True)).to_be_visible()

    def cell(self, table: Locator, row_text: str, column: str) -> Locator:
        """The cell of `column` (a header's text) in the row of `table` with a cell `row_text`."""
        expect(table.get_by_role("columnheader", name=column, exact=True)).to_be_visible()
        # the UI may still be redrawing the table (a refetch shows a skeleton meanwhile), and
        # inner text follows CSS case: read the headers until the column is among them
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while True:
            headers = [
                h.strip().lower() for h in table.get_by_role("columnheader").all_inner_texts()
            ]
            if column.lower() in headers or time.monotonic() > deadline:
                break
            self.page.wait_for_timeout(250)
        assert column.lower() in headers, f"no column {column!r} among {headers}"
        name_cell = self.page.get_by_role("cell", name=row_text, exact=True)
        row = table.get_by_role("row").filter(has=name_cell)
        return row.first.get_by_role("cell").nth(headers.index(column.lower()))


@contextmanager
def prefect_ui(base_url: str, shots: Path) -> Iterator[PrefectUI]:
    """Headless Chromium launched as the product launches it (tasks/registry/browser.py)."""
    shots.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            headless=True,
            executable_path=chromium_executable(playwright),  # type: ignore[arg-type]
            args=list(CHROMIUM_ARGS),
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="en-US")
            page.set_default_timeout(STEP_TIMEOUT_MS)
            ui = PrefectUI(page, base_url, shots)
            try:
                yield ui
            except BaseException:
                with suppress(Exception):  # the failure's own message matters more
                    ui.shot("failure")
                raise
        finally:
            browser.close()
