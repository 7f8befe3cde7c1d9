from __future__ import annotations

import pytest

from sandbox.registry import control
from tasks.registry.browser import BrowserHost
from tasks.registry.driver import download_document
from tasks.registry.models import DownloadResult
from tasks.request import Request

pytestmark = pytest.mark.slow


async def fetch(harness, host: BrowserHost, job: Request, **kw) -> DownloadResult:
    return await download_document(
        job,
        accounts=kw.get("accounts") or harness.pool(),
        sessions=kw.get("sessions") or harness.sessions(),
        cfg=harness.config,
        evidence_dir=harness.evidence_dir,
        browser=host,
    )


def index(lot: str, circ: str = "Montréal", cadastre: str = "Cadastre du Québec", **kw):
    return Request(
        document_source="index",
        document_number=lot,
        circonscription=circ,
        cadastre=cadastre,
        **kw,
    )


def acte(numero: str, circ: str = "Montréal", acte_type: str | None = "Acte"):
    return Request(
        document_source="acte",
        document_number=numero,
        circonscription=circ,
        acte_type=acte_type,
    )


def plan(lot: str, circ: str = "Montréal", cadastre: str = "Cadastre du Québec", **kw):
    return Request(
        document_source="plan_cadastraux",
        document_number=lot,
        circonscription=circ,
        cadastre=cadastre,
        **kw,
    )


@pytest.mark.parametrize(
    ("job", "document_id"),
    [
        pytest.param(index("2 274 178", "Montreal"), "IDX-001", id="index"),
        pytest.param(
            index("2101", "Quebec", "Cité de Québec, quartier St-Roch"),
            "IDX-004",
            id="index-with-confirmation",
        ),
        pytest.param(
            index("15-2", "Shefford", "Canton d'Ely", designation_secondaire="Rang 4"),
            "IDX-010",
            id="index-with-designation",
        ),
        pytest.param(acte("10 687 352"), "ACT-001", id="acte"),
        pytest.param(
            acte("10 730 146", acte_type="Avis d'adresse"),
            "ACT-002",
            id="acte-skips-paper-only-row",
        ),
        pytest.param(acte("10 687 354"), "ACT-001", id="acte-similar-numbers-list"),
        pytest.param(plan("2 274 178"), "PLN-001-V3", id="plan-most-recent-version"),
        pytest.param(
            plan("15-2", "Shefford", "Canton d'Ely", designation_secondaire="Rang 3"),
            "PLN-003-V2",
            id="plan-inactive-lot",
        ),
    ],
)
def test_each_document_type_downloads_a_pdf(harness, run, job, document_id) -> None:
    result = run(lambda host: fetch(harness, host, job))
    assert result.pdf.startswith(b"%PDF") and result.size_bytes > 1000
    assert harness.counters()["downloads_by_document"] == {document_id: 1}
    assert result.account_id and result.logins == 1


def test_acte_type_falls_back_to_acte_divers(harness, run) -> None:
    """An acte filed as "Acte divers" but requested as "Acte" is found on the second type."""
    result = run(lambda host: fetch(harness, host, acte("11 286 730")))
    assert result.selections.acte_type == "Acte divers"
    assert harness.counters()["downloads_by_document"] == {"ACT-003": 1}


def test_inline_pdf_in_the_page_frame(harness, run) -> None:
    """When the PDF is shown in the frame instead of downloaded, it is fetched all the same."""
    control.set_faults(harness.base_url, download_mode="inline")
    result = run(lambda host: fetch(harness, host, acte("10 687 352")))
    assert result.pdf.startswith(b"%PDF")
    assert harness.counters()["downloads"] >= 1


def test_stored_session_is_reused(harness, run) -> None:
    """The second document logs in no more: the session comes from Redis."""
    sessions = harness.sessions()

    async def two(host: BrowserHost) -> tuple[DownloadResult, DownloadResult]:
        first = await fetch(harness, host, index("2 274 178"), sessions=sessions)
        second = await fetch(harness, host, acte("10 687 352"), sessions=sessions)
        return first, second

    first, second = run(two)
    assert first.logins == 1 and not first.session_reused
    assert second.logins == 0 and second.session_reused
    assert first.account_id == second.account_id
    assert sum(harness.counters()["logins"].values()) == 1


def test_expired_stored_session_logs_in_again(harness, run) -> None:
    """A stored session the site has dropped is replaced, and the document still comes."""
    sessions = harness.sessions()

    async def two(host: BrowserHost) -> DownloadResult:
        await fetch(harness, host, index("2 274 178"), sessions=sessions)
        control.expire_sessions(harness.base_url)
        return await fetch(harness, host, acte("10 687 352"), sessions=sessions)

    second = run(two)
    assert second.pdf.startswith(b"%PDF") and second.logins == 1
    assert sum(harness.counters()["logins"].values()) == 2


def test_session_expiring_mid_document_recovers(harness, run) -> None:
    """The stored session dies halfway through the second document (after the search, in the
    viewer); the run logs in again, starts that document over and gets it."""
    # A session serves 12 requests: the acte uses 7 of them (welcome page included), an index
    # needs 11, so the stored session runs out inside the index download, a fresh one does not.
    control.set_faults(harness.base_url, session_max_pages=12)
    sessions = harness.sessions()

    async def two(host: BrowserHost) -> DownloadResult:
        await fetch(harness, host, acte("10 687 352"), sessions=sessions)
        return await fetch(harness, host, index("2 274 178"), sessions=sessions)

    second = run(two)
    assert second.pdf.startswith(b"%PDF") and second.logins == 1
    counters = harness.counters()
    assert counters["sessions_expired"] == 1 and sum(counters["logins"].values()) == 2
    assert counters["searches"]["index"] == 2  # the index search ran once per session


def test_concurrent_downloads_use_different_accounts(harness, run) -> None:
    import asyncio

    async def both(host: BrowserHost) -> list[DownloadResult]:
        return await asyncio.gather(
            fetch(harness, host, index("2 274 178"), accounts=harness.pool("run-a")),
            fetch(harness, host, acte("10 687 352"), accounts=harness.pool("run-b")),
        )

    a, b = run(both)
    assert a.pdf.startswith(b"%PDF") and b.pdf.startswith(b"%PDF")
    assert a.account_id != b.account_id
    assert len(harness.counters()["logins"]) == 2
    assert all(harness.account(u)["checkout_owner"] is None for u in ("agent01", "agent02"))


def test_bad_credentials_count_a_failure_and_the_next_account_is_used(harness, run) -> None:
    harness.sql("UPDATE worker_accounts SET last_used = now() - interval '1 day'")
    harness.add_account("agent09", "not-the-password")  # never used: it is taken first

    result = run(lambda host: fetch(harness, host, index("2 274 178")))
    assert result.pdf.startswith(b"%PDF")
    assert result.account_id != harness.account("agent09")["id"]
    assert harness.account("agent09")["failure_count"] == 1
    assert harness.counters()["login_failures"] == {"agent09": 1}


def test_successful_login_resets_failure_count(harness, run) -> None:
    harness.sql(
        "UPDATE worker_accounts SET failure_count = 2, last_used = NULL WHERE username = 'agent01'"
    )
    harness.sql("UPDATE worker_accounts SET last_used = now() WHERE username <> 'agent01'")
    run(lambda host: fetch(harness, host, index("2 274 178")))
    assert harness.account("agent01")["failure_count"] == 0


def test_pages_that_never_finish_loading_do_not_stall_the_run(harness, run) -> None:
    """A stuck resource holds back the load event; the driver only needs the parsed page."""
    control.set_faults(harness.base_url, stuck_next_pages=4)
    result = run(lambda host: fetch(harness, host, index("2 274 178")))
    assert result.pdf.startswith(b"%PDF")
