from __future__ import annotations

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tasks.registry.errors import (
    AccountError,
    BrowserCrashed,
    DocumentNotFound,
    NoAccountAvailable,
    NoMatchingOption,
    RegistryTimeout,
    SessionExpired,
    SiteUnavailable,
    classify,
    classify_message,
    error_from_message,
    translate,
)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("La fiche immobilière demandée est inexistante", "permanent"),  # index not found
        ("Aucune information ne correspond aux critères de sélection", "permanent"),
        ("Le document demandé est inexistant", "permanent"),
        ("Le lot n'existe pas dans la circonscription foncière demandée", "permanent"),
        ("Le lot n’existe pas dans la circonscription", "permanent"),  # typographic apostrophe
        ("Votre session est expirée. Veuillez vous reconnecter.", "transient"),
        ("Le service est temporairement indisponible", "transient"),
        ("Nous vous proposons une liste de document(s) dont le numéro est semblable", None),
        ("Le lot 2 274 178 est inactif", None),
    ],
)
def test_classify_message(message: str, kind: str | None) -> None:
    assert classify_message(message) == kind


def test_error_from_message_keeps_the_registry_text() -> None:
    error = error_from_message("  Le document demandé\n est inexistant ", context="acte search")
    assert isinstance(error, DocumentNotFound)
    assert error.registry_message == "Le document demandé est inexistant"
    assert str(error) == "acte search: Le document demandé est inexistant"
    assert classify(error) == "permanent"


def test_unknown_registry_message_fails_the_document() -> None:
    error = error_from_message("Le numéro de lot est invalide", context="index search")
    assert classify(error) == "permanent"
    assert error.registry_message == "Le numéro de lot est invalide"


@pytest.mark.parametrize(
    ("exc", "kind", "translated"),
    [
        (PlaywrightTimeoutError("Timeout 30000ms exceeded."), "transient", RegistryTimeout),
        (
            PlaywrightError("Target page, context or browser has been closed"),
            "transient",
            BrowserCrashed,
        ),
        (PlaywrightError("Target closed"), "transient", BrowserCrashed),
        (PlaywrightError("Page crashed"), "transient", BrowserCrashed),
        (
            PlaywrightError("net::ERR_CONNECTION_REFUSED at https://x/Sirf/"),
            "transient",
            SiteUnavailable,
        ),
        (PlaywrightError("Execution context was destroyed"), "transient", None),
        (TimeoutError(), "transient", RegistryTimeout),
        (ConnectionResetError("reset"), "transient", SiteUnavailable),
        (SessionExpired(), "transient", SessionExpired),
        (NoAccountAvailable(), "transient", NoAccountAvailable),
        (
            NoMatchingOption("circonscription 'Gaspé' is not among the choices"),
            "permanent",
            NoMatchingOption,
        ),
        (
            AccountError("refused", registry_message="Mot de passe invalide"),
            "account",
            AccountError,
        ),
        (ValueError("a bug"), "transient", None),  # bounded by the job's attempts
    ],
)
def test_classify_exceptions(exc: BaseException, kind: str, translated: type | None) -> None:
    assert classify(exc) == kind
    if translated is not None:
        assert isinstance(translate(exc), translated)


def test_default_message_is_the_docstring() -> None:
    assert "No registry account is free" in str(NoAccountAvailable())
