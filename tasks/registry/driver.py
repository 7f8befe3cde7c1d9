from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page

from tasks.failures import RetryLater
from tasks.registry.accounts import Account, AccountPool
from tasks.registry.browser import BrowserHost
from tasks.registry.config import RegistryConfig
from tasks.registry.document import PdfCatcher, fetch_pdf, open_document
from tasks.registry.errors import (
    AccountError,
    NoAccountAvailable,
    RegistryError,
    SessionExpired,
    translate,
)
from tasks.registry.evidence import capture_failure, discard_trace, start_trace
from tasks.registry.forms import search
from tasks.registry.login import log_in
from tasks.registry.models import DownloadResult, Selections
from tasks.registry.session import SessionStore
from tasks.request import Request

__all__ = ["download_document", "login_state"]

logger = logging.getLogger(__name__)

MAX_ACCOUNTS_PER_DOCUMENT = 5  # refused credentials: try at most this many accounts


async def login_state(
    host: BrowserHost,
    account: Account,
    accounts: AccountPool,
    cfg: RegistryConfig,
    evidence_dir: Path,
) -> dict[str, Any]:
    """Log in within a context of its own, never traced, and return its storage state."""
    context = await host.new_context()
    try:
        await log_in(context, account, cfg)
        state = await context.storage_state()
    except Exception as exc:
        error = translate(exc, context="registry login")
        error.evidence = await capture_failure(
            context, _first_page(context), evidence_dir, f"login_{account.username}", trace=False
        )
        if isinstance(error, AccountError):
            await accounts.record_login(account, success=False)
        raise error from (None if error is exc else exc)
    finally:
        await _close(context)
    await accounts.record_login(account, success=True)
    return state  # type: ignore[return-value]


async def _close(context: BrowserContext) -> None:
    try:
        await context.close()
    except Exception:  # the browser crashed: the context went with it
        logger.debug("context close failed", exc_info=True)


def _first_page(context: BrowserContext) -> Page | None:
    return context.pages[0] if context.pages else None


async def _run_flow(
    context: BrowserContext, page: Page, job: Request, cfg: RegistryConfig
) -> tuple[bytes, Selections]:
    catcher = PdfCatcher(context)
    selections = await search(page, job, cfg)
    await open_document(page, job.document_source, cfg, catcher)
    return await fetch_pdf(context, page, catcher, cfg), selections


async def _download_with_account(
    job: Request,
    account: Account,
    *,
    host: BrowserHost,
    accounts: AccountPool,
    sessions: SessionStore,
    cfg: RegistryConfig,
    evidence_dir: Path,
) -> DownloadResult:
    logins = 0
    state = await sessions.load(account.id)
    reused = state is not None
    if state is None:
        state = await login_state(host, account, accounts, cfg, evidence_dir)
        logins += 1
        await sessions.save(account.id, state)

    context = await host.new_context(storage_state=state)
    page: Page | None = None
    relogged = False
    try:
        await start_trace(context)
        page = await context.new_page()
        try:
            pdf, selections = await _run_flow(context, page, job, cfg)
        except SessionExpired:
            logger.info(
                "session expired, logging in again",
                extra={"action": "session_expired", "account_id": account.id},
            )
            await sessions.drop(account.id)
            state = await login_state(host, account, accounts, cfg, evidence_dir)
            logins += 1
            relogged = True
            await context.clear_cookies()
            await context.add_cookies(state.get("cookies", []))
            pdf, selections = await _run_flow(context, page, job, cfg)
        await _keep_session(sessions, account.id, context)
        await discard_trace(context)
    except RetryLater:
        raise  # accounts or Supabase, not the registry: nothing of the page to keep
    except Exception as exc:
        error = translate(exc, context=job.label)
        if isinstance(error, SessionExpired) and relogged:
            error = SessionExpired(f"{job.label}: the session expired again after a new login")
        label = f"{job.document_source}_{job.document_number}"
        error.evidence = await capture_failure(context, page, evidence_dir, label)
        raise error from (None if error is exc else exc)
    finally:
        await _close(context)

    if not pdf.startswith(b"%PDF"):
        raise RegistryError(f"{job.label}: the registry sent something that is not a PDF")
    return DownloadResult(
        pdf=pdf,
        selections=selections,
        account_id=account.id,
        session_reused=reused and logins == 0,
        logins=logins,
    )


async def download_document(
    job: Request,
    *,
    accounts: AccountPool,
    sessions: SessionStore,
    cfg: RegistryConfig,
    evidence_dir: Path,
    browser: BrowserHost,
) -> DownloadResult:
    """Download one document from the registry and return its PDF.

    Takes a free account (the next one when the registry refuses its credentials), reuses its
    stored session or logs in, and runs the search in a fresh browser context. Raises a
    RegistryError subclass (errors.py) whose `evidence` lists the screenshot and trace saved."""
    refused: list[str] = []
    last_refusal: AccountError | None = None
    while len(refused) < MAX_ACCOUNTS_PER_DOCUMENT:
        try:
            live = await sessions.live_accounts()
            account = await accounts.checkout(exclude=refused, prefer=live)
        except NoAccountAvailable as exc:
            if last_refusal is None:
                raise
            raise NoAccountAvailable(
                f"no usable account left: the registry refused {len(refused)}"
                f" ({last_refusal.registry_message})"
            ) from exc
        try:
            return await _download_with_account(
                job,
                account,
                host=browser,
                accounts=accounts,
                sessions=sessions,
                cfg=cfg,
                evidence_dir=evidence_dir,
            )
        except AccountError as exc:
            refused.append(account.id)
            last_refusal = exc
            await sessions.drop(account.id)
        finally:
            await _release(accounts, account)
    assert last_refusal is not None
    raise last_refusal


async def _keep_session(sessions: SessionStore, account_id: str, context: BrowserContext) -> None:
    """Best effort: the PDF is here; a lost session only costs the next document a login."""
    try:
        await sessions.save(account_id, await context.storage_state())
    except Exception:
        logger.warning("session not stored", extra={"action": "store_session_failed"})


async def _release(accounts: AccountPool, account: Account) -> None:
    """Best effort: the checkout lease frees the account by itself if this fails."""
    try:
        await accounts.release(account)
    except Exception:
        logger.warning(
            "account not released", extra={"action": "release_failed", "account_id": account.id}
        )
