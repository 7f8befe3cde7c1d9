from __future__ import annotations

import pytest

from sandbox.registry import control
from tasks.registry import BrowserHost, DownloadResult, RegistryRequest, download_document

pytestmark = pytest.mark.slow


async def fetch(harness, host: BrowserHost, job: RegistryRequest, **kw) -> DownloadResult:
    return await download_document(
        job,
        accounts=kw.pop("accounts", None) or harness.pool(),
        sessions=kw.pop("sessions", None) or harness.sessions(),
        settings=harness.config,
        evidence_dir=harness.evidence_dir,
        browser=host,
    )


INDEX = RegistryRequest(
    document_source="index",
    document_number="2 274 178",
    circonscription_fonciere="Montreal",
    cadastre="Cadastre du Québec",
)


def test_index_downloads_a_pdf(harness, run) -> None:
    result = run(lambda host: fetch(harness, host, INDEX))
    assert result.pdf.startswith(b"%PDF")
    assert (result.circonscription, result.cadastre) == ("Montréal", "Cadastre du Québec")
    assert result.logins == 1 and not result.session_reused
    assert harness.counters()["downloads_by_document"] == {"IDX-001": 1}
