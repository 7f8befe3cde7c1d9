from __future__ import annotations

import logging

from playwright.async_api import BrowserContext, Page

from tasks.registry.accounts import Account
from tasks.registry.config import RegistryConfig
from tasks.registry.errors import AccountError, error_class, error_from_message
from tasks.registry.pages import (
    ENTRY_LINK,
    LOGIN_PASSWORD,
    LOGIN_USER,
    click_and_wait,
    goto,
    ms,
    read_messages,
    submit_button,
)

__all__ = ["log_in"]

logger = logging.getLogger(__name__)


async def _login_form(page: Page, cfg: RegistryConfig) -> None:
    """From the site's entry page to the login form (DOMAIN.md §2.3 steps 1-2)."""
    await goto(page, cfg.site_url, cfg, context="registry entry page")
    user = page.locator(LOGIN_USER).or_(page.get_by_label("Code d'utilisateur")).first
    if await user.count() == 0:
        await click_and_wait(
            page, page.locator(ENTRY_LINK).first, cfg.login_timeout_s, context="registry entry"
        )
    await user.wait_for(state="visible", timeout=ms(cfg.first_selector_timeout_s))


async def log_in(context: BrowserContext, account: Account, cfg: RegistryConfig) -> Page:
    """Log in with `account` in `context`, which must not be traced (the trace would keep the
    password). Raises AccountError when the registry refuses the credentials."""
    page = await context.new_page()
    await _login_form(page, cfg)
    user = page.locator(LOGIN_USER).or_(page.get_by_label("Code d'utilisateur")).first
    password = page.locator(LOGIN_PASSWORD).or_(page.get_by_label("Mot de passe")).first
    await user.fill(account.username)
    await password.fill(account.password.get_secret_value())
    button = submit_button(page, "Soumettre", "Connexion", "Entrer")
    await click_and_wait(page, button, cfg.login_timeout_s, context="registry login")

    messages = await read_messages(page)
    still_on_form = await page.locator(LOGIN_PASSWORD).count() > 0
    if still_on_form:
        await page.locator(LOGIN_PASSWORD).first.fill("")  # keep it out of any screenshot
    for text in messages:
        known = error_class(text)
        if known is not None and not known.permanent:  # the site, not the credentials
            raise error_from_message(text, context="registry login")
    if messages or still_on_form:
        text = " ".join(messages) or "the login form came back without a message"
        raise AccountError(
            f"registry refused account {account.username}: {text}", registry_message=text
        )
    logger.info("logged in", extra={"action": "login", "account_id": account.id})
    return page
