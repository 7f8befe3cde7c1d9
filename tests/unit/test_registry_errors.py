from __future__ import annotations

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tasks.failures import Failure, Fate, decide
from tasks.registry.errors import (
    AccountError,
    BrowserCrashed,
    DocumentNotFound,
    NoAccountAvailable,
    NoMatchingOption,
    RegistryTimeout,
    SessionExpired,
    SiteUnavailable,
    error_class,
    error_from_message,
    translate,
)


def fate(exc: BaseException) -> Fate:
    """The row's fate had the download raised `exc` (the driver translates what is not ours)."""
    failure = exc if isinstance(exc, Failure) else translate(exc)
    return decide(failure, attempts=0, base_s=1).fate


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("La fiche immobilière demandée est inexistante", DocumentNotFound),  # index not found
        ("Aucune information ne correspond aux critères de sélection", DocumentNotFound),
        ("Le document demandé est inexistant", DocumentNotFound),
        ("Le lot n'existe pas dans la circonscription foncière demandée", DocumentNotFound),
        ("Le lot n’existe pas dans la circonscription", DocumentNotFound),  # typographic '
        ("Votre session est expirée. Veuillez vous reconnecter.", SessionExpired),
        ("Le service est temporairement indisponible", SiteUnavailable),
        ("Nous vous proposons une liste de document(s) dont le numéro est semblable", None),
        ("Le lot 2 274 178 est inactif", None),
    ],
)
def test_error_class(message: str, error: type | None) -> None:
    assert error_class(message) is error
    if error is not None:
        expected = Fate.ERROR if error is DocumentNotFound else Fate.RETRY
        assert fate(error_from_message(message, context="search")) is expected


def test_error_from_message_keeps_the_registry_text() -> None:
    error = error_from_message("  Le document demandé\n est inexistant ", context="acte search")
    assert isinstance(error, DocumentNotFound)
    assert error.registry_message == "Le document demandé est inexistant"
    assert str(error) == "acte search: Le document demandé est inexistant"
    assert fate(error) is Fate.ERROR


def test_unknown_registry_message_fails_the_document() -> None:
    error = error_from_message("Le numéro de lot est invalide", context="index search")
    assert fate(error) is Fate.ERROR
    assert error.registry_message == "Le numéro de lot est invalide"


@pytest.mark.parametrize(
    ("exc", "expected", "translated"),
    [
        (PlaywrightTimeoutError("Timeout 30000ms exceeded."), Fate.RETRY, RegistryTimeout),
        (
            PlaywrightError("Target page, context or browser has been closed"),
            Fate.RETRY,
            BrowserCrashed,
        ),
        (PlaywrightError("Target closed"), Fate.RETRY, BrowserCrashed),
        (PlaywrightError("Page crashed"), Fate.RETRY, BrowserCrashed),
        (
            PlaywrightError("net::ERR_CONNECTION_REFUSED at https://x/Sirf/"),
            Fate.RETRY,
            SiteUnavailable,
        ),
        (PlaywrightError("Execution context was destroyed"), Fate.RETRY, None),
        (TimeoutError(), Fate.RETRY, RegistryTimeout),
        (ConnectionResetError("reset"), Fate.RETRY, SiteUnavailable),
        (SessionExpired(), Fate.RETRY, SessionExpired),
        (NoAccountAvailable(), Fate.WAIT, None),  # no attempt spent, nothing to translate
        (
            NoMatchingOption("circonscription 'Gaspé' is not among the choices"),
            Fate.ERROR,
            NoMatchingOption,
        ),
        (
            AccountError("refused", registry_message="Mot de passe invalide"),
            Fate.RETRY,
            AccountError,
        ),
        (ValueError("a bug"), Fate.RETRY, None),  # bounded by the job's attempts
    ],
)
def test_fate_of_exceptions(exc: BaseException, expected: Fate, translated: type | None) -> None:
    assert fate(exc) is expected
    if translated is not None:
        assert isinstance(translate(exc), translated)


def test_default_message_is_the_docstring() -> None:
    assert "No registry account is free" in str(NoAccountAvailable())
