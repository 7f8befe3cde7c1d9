from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from playwright.async_api import BrowserContext, Page

from tasks.registry.pages import LOGIN_PASSWORD

__all__ = ["capture_failure", "discard_trace", "start_trace"]

logger = logging.getLogger(__name__)

PASSWORD_INPUTS = LOGIN_PASSWORD  # every way login finds the field, whatever its type attribute
SCREENSHOT_TIMEOUT_MS = 15_000
LABEL_MAX = 60  # file names stay far below the file system's 255 bytes, whatever the row holds


# Playwright's trace snapshots record every input's value, password fields included, and the
# trace logs each fill() with its text. So no password is ever typed into a traced context: logins
# run in a separate, untraced context whose cookies are then handed over (see driver.login_state).
async def start_trace(context: BrowserContext) -> None:
    await context.tracing.start(screenshots=True, snapshots=True, sources=False)


async def discard_trace(context: BrowserContext) -> None:
    try:
        await context.tracing.stop()
    except Exception:  # the context may already be gone; there is nothing to keep
        logger.debug("trace stop failed", exc_info=True)


def _stem(label: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:LABEL_MAX] or "registry"
    return f"{safe}_{int(time.time() * 1000)}"


async def capture_failure(
    context: BrowserContext,
    page: Page | None,
    evidence_dir: Path,
    label: str,
    *,
    trace: bool = True,
) -> list[Path]:
    """A full-page screenshot (password fields masked) and the trace zip; returns what was saved.

    Evidence is best effort: a crashed browser leaves none, and that must not hide the error."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(label)
    saved: list[Path] = []
    if page is not None and not page.is_closed():
        shot = evidence_dir / f"{stem}.png"
        try:
            masks = [frame.locator(PASSWORD_INPUTS) for frame in page.frames]
            await page.screenshot(
                path=shot, full_page=True, mask=masks, timeout=SCREENSHOT_TIMEOUT_MS
            )
            saved.append(shot)
        except Exception:
            logger.warning("failure screenshot not taken", exc_info=True)
    if not trace:
        return saved
    trace_zip = evidence_dir / f"{stem}.trace.zip"
    try:
        await context.tracing.stop(path=trace_zip)
        if trace_zip.exists():
            saved.append(trace_zip)
    except Exception:
        logger.warning("failure trace not saved", exc_info=True)
    return saved
