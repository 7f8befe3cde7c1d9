from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright

__all__ = ["BrowserHost", "chromium_executable"]

logger = logging.getLogger(__name__)

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
CONTEXT_OPTIONS: dict[str, Any] = {
    "accept_downloads": True,
    "locale": "fr-CA",
    "viewport": {"width": 1280, "height": 720},
}


def chromium_executable(playwright: Playwright) -> str | None:
    """Playwright's own Chromium when it is installed, else the system one (None: neither exists,
    and Playwright's launch error says how to install one)."""
    managed = playwright.chromium.executable_path
    if managed and os.path.exists(managed):
        return managed
    if SYSTEM_CHROMIUM.exists():
        return str(SYSTEM_CHROMIUM)
    return None


class BrowserHost:
    """One Chromium, launched on first use; each document gets its own fresh context from it."""

    def __init__(self, *, headless: bool = True) -> None:
        self.headless = headless
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BrowserHost(headless={self.headless}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def browser(self) -> Browser:
        """The running browser, (re)launched when it is not there or has crashed."""
        async with self._lock:
            if self.connected:
                assert self._browser is not None
                return self._browser
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            executable = chromium_executable(self._playwright)
            self._browser = await self._playwright.chromium.launch(
                headless=self.headless, executable_path=executable, args=list(CHROMIUM_ARGS)
            )
            logger.info(
                "browser launched",
                extra={"action": "launch_browser", "executable": executable or "playwright"},
            )
            return self._browser

    async def new_context(self, storage_state: dict[str, Any] | None = None) -> BrowserContext:
        browser = await self.browser()
        return await browser.new_context(storage_state=storage_state, **CONTEXT_OPTIONS)

    async def close(self) -> None:
        async with self._lock:
            if self._browser is not None:
                try:
                    await self._browser.close()
                except Exception:  # already crashed: nothing left to close
                    logger.debug("browser close failed", exc_info=True)
                self._browser = None
            if self._playwright is not None:
                await self._playwright.stop()
                self._playwright = None

    async def __aenter__(self) -> BrowserHost:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
