"""What went wrong on the registry, in the failure tree (tasks/failures.py).

* RegistryError (DocumentFailed)  the registry could not give this document: one attempt spent
  + PermanentRegistryError        permanent: fail this document now, no retry
    - DocumentNotFound            the registry says the document, lot or index sheet does not exist
    - NoMatchingOption            the circonscription/cadastre/type/designation is not on the form
  + TransientRegistryError        retried later, with backoff
    - RegistryTimeout             a page, selector or the document did not come in time
    - SiteUnavailable             5xx, network error
    - BrowserCrashed              the browser or its page went away
    - SessionExpired              the site logged us out and logging in again did not help
    - DownloadStalled             the document page loaded but no PDF came out of it
  + AccountError                  the credentials were refused: the driver uses the next account
* NoAccountAvailable (RetryLater) every usable account is checked out (or none is usable)
* AccountStoreError (RetryLater)  worker_accounts could not be read or written
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tasks.failures import DocumentFailed, RetryLater
from tasks.registry.matching import normalize

__all__ = [
    "AccountError",
    "AccountStoreError",
    "BrowserCrashed",
    "DocumentNotFound",
    "DownloadStalled",
    "NoAccountAvailable",
    "NoMatchingOption",
    "PermanentRegistryError",
    "RegistryError",
    "RegistryTimeout",
    "SessionExpired",
    "SiteUnavailable",
    "TransientRegistryError",
    "error_class",
    "error_from_message",
    "translate",
]

# Registry texts (normalised, see matching.normalize) that mean the thing asked for does not exist.
_NOT_FOUND_MARKERS = ("inexistant", "aucune information ne correspond", "n existe pas")
_SESSION_MARKERS = ("session expir", "session est expir", "session a expir", "reconnecter")
_UNAVAILABLE_MARKERS = ("indisponible", "temporairement", "reessayer plus tard", "maintenance")
_BROWSER_GONE_MARKERS = (
    "target closed",
    "target page, context or browser has been closed",
    "browser has been closed",
    "browser has disconnected",
    "connection closed",
    "crashed",
    "protocol error",
)


class RegistryError(DocumentFailed):
    """The registry could not be used."""

    def __init__(self, message: str | None = None, *, registry_message: str | None = None):
        self.registry_message = registry_message
        self.evidence: list[Path] = []  # the failure's screenshot and trace, saved here
        self.stored_evidence: list[str] = []  # where they were uploaded, said with the message
        super().__init__(message or registry_message or self.__doc__)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __str__(self) -> str:
        if not self.stored_evidence:
            return self.message
        return f"{self.message} (evidence: {', '.join(self.stored_evidence)})"


class PermanentRegistryError(RegistryError):
    """The registry refused this document; trying again will not help."""

    permanent = True


class DocumentNotFound(PermanentRegistryError):
    """The registry says the requested document does not exist."""


class NoMatchingOption(PermanentRegistryError):
    """The requested value is not among the registry form's options."""


class TransientRegistryError(RegistryError):
    """The registry or the browser failed for now; try again later."""


class RegistryTimeout(TransientRegistryError):
    """The registry did not answer in time."""


class SiteUnavailable(TransientRegistryError):
    """The registry site answered with a server error or could not be reached."""


class BrowserCrashed(TransientRegistryError):
    """The browser or its page closed during the download."""


class SessionExpired(TransientRegistryError):
    """The registry session expired and could not be renewed."""


class DownloadStalled(TransientRegistryError):
    """The document page loaded but no PDF could be obtained from it."""


class AccountError(RegistryError):
    """The registry refused this account's credentials."""


class NoAccountAvailable(RetryLater):
    """No registry account is free: all are in use, inactive or over the failure limit."""

    what = None  # the message says it all


class AccountStoreError(RetryLater):
    """The worker_accounts table could not be read or updated."""

    what = "registry accounts"


def error_class(text: str) -> type[RegistryError] | None:
    """What a message shown by the registry means; None when it is not a known error."""
    norm = normalize(text)
    if any(marker in norm for marker in _NOT_FOUND_MARKERS):
        return DocumentNotFound
    if any(marker in norm for marker in _SESSION_MARKERS):
        return SessionExpired
    if any(marker in norm for marker in _UNAVAILABLE_MARKERS):
        return SiteUnavailable
    return None


def error_from_message(text: str, *, context: str) -> RegistryError:
    """The exception for an error message shown on a registry page (`context` says which step)."""
    text = " ".join(text.split())
    # An unknown validation message is the site refusing the request as posted: a person must look.
    cls = error_class(text) or PermanentRegistryError
    return cls(f"{context}: {text}", registry_message=text)


def translate(exc: BaseException, *, context: str = "registry") -> RegistryError:
    """A RegistryError for any exception raised while driving the browser."""
    if isinstance(exc, RegistryError):
        return exc
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PlaywrightTimeoutError | TimeoutError):
        return RegistryTimeout(f"{context}: timed out ({detail})")
    lowered = detail.lower()
    if isinstance(exc, PlaywrightError):
        if any(marker in lowered for marker in _BROWSER_GONE_MARKERS):
            return BrowserCrashed(f"{context}: browser closed ({detail})")
        if "net::err_" in lowered or "ns_error" in lowered:
            return SiteUnavailable(f"{context}: site unreachable ({detail})")
        return TransientRegistryError(f"{context}: browser error ({detail})")
    if isinstance(exc, ConnectionError | OSError):
        return SiteUnavailable(f"{context}: {detail}")
    return TransientRegistryError(f"{context}: unexpected {type(exc).__name__} ({detail})")
