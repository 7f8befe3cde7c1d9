from __future__ import annotations

import zipfile

import pytest

from sandbox.registry import control
from sandbox.registry.catalogue import ACCOUNTS
from tasks.failures import Failure, Fate, decide
from tasks.registry.errors import (
    DocumentNotFound,
    DownloadStalled,
    NoAccountAvailable,
    NoMatchingOption,
    PermanentRegistryError,
    SiteUnavailable,
)

from .test_download import acte, fetch, index, plan

pytestmark = pytest.mark.slow


def failure(harness, run, job) -> Failure:
    with pytest.raises(Failure) as caught:
        run(lambda host: fetch(harness, host, job))
    return caught.value


@pytest.mark.parametrize(
    ("job", "error_type", "message"),
    [
        pytest.param(
            index("9 999 999"),
            DocumentNotFound,
            "La fiche immobilière demandée est inexistante.",
            id="index-inexistante",
        ),
        pytest.param(
            index("2 274 178", "Québec"),
            DocumentNotFound,
            "Le lot n'existe pas dans la circonscription foncière demandée.",
            id="lot-elsewhere",
        ),
        pytest.param(
            plan("8 888 888"),
            DocumentNotFound,
            "Aucune information ne correspond aux critères de sélection.",
            id="plan-no-match",
        ),
        pytest.param(
            acte("99 999 999"),
            DocumentNotFound,
            "Le document demandé est inexistant.",
            id="acte-inexistant-under-every-type",
        ),
        pytest.param(
            acte("187 455", "Shefford"), PermanentRegistryError, "papier", id="acte-paper-only"
        ),
        pytest.param(
            index("2 274 178", "Gaspé"), NoMatchingOption, "Gaspé", id="unknown-circonscription"
        ),
    ],
)
def test_registry_refusals_are_permanent(harness, run, job, error_type, message) -> None:
    error = failure(harness, run, job)
    assert isinstance(error, error_type), repr(error)
    assert decide(error, attempts=0, base_s=1).fate is Fate.ERROR
    assert message in str(error)


def test_server_error_is_transient(harness, run) -> None:
    control.set_faults(harness.base_url, fail_next_searches=1)
    error = failure(harness, run, index("2 274 178"))
    assert (
        isinstance(error, SiteUnavailable)
        and decide(error, attempts=0, base_s=1).fate is Fate.RETRY
    )
    assert "500" in str(error)


def test_stalled_download_is_transient(harness, run) -> None:
    control.set_faults(harness.base_url, stall_next_downloads=1)
    error = failure(harness, run, acte("10 687 352"))
    assert isinstance(error, DownloadStalled)
    assert decide(error, attempts=0, base_s=1).fate is Fate.RETRY


def test_no_usable_account_is_transient(harness, run) -> None:
    harness.sql("UPDATE worker_accounts SET password = 'wrong'")
    error = failure(harness, run, index("2 274 178"))
    assert isinstance(error, NoAccountAvailable)
    assert decide(error, attempts=0, base_s=1).fate is Fate.WAIT  # no attempt spent
    assert "invalide" in str(error)
    failures = harness.sql("SELECT failure_count FROM worker_accounts")
    assert sorted(f for (f,) in failures) == [1, 1, 1]


def test_failure_evidence_is_saved_without_passwords(harness, run) -> None:
    """A screenshot and a trace come with the error; the trace never holds a password."""
    error = failure(harness, run, index("9 999 999"))
    kinds = sorted(path.suffix for path in error.evidence)
    assert kinds == [".png", ".zip"], error.evidence
    assert all(path.exists() and path.stat().st_size > 0 for path in error.evidence)
    trace = next(p for p in error.evidence if p.suffix == ".zip")
    with zipfile.ZipFile(trace) as archive:
        blob = b"".join(archive.read(name) for name in archive.namelist())
    assert b"inexistante" in blob  # the trace did record the failing page
    for account in ACCOUNTS:
        assert account.password.encode() not in blob
