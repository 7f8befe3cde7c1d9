"""decide(): every adapter's failure, and a bug, to the row's fate, message and delay."""

from __future__ import annotations

import pytest
import redis

from tasks.coordination.capacity.budget import WorkerKind
from tasks.coordination.capacity.leases import CapacityExceeded
from tasks.coordination.ratelimit import RateLimitTimeout
from tasks.failures import (
    RETRY_MAX_SECONDS,
    ConfigError,
    DocumentFailed,
    Failure,
    Fate,
    RetryLater,
    decide,
)
from tasks.gemini.errors import (
    GeminiConfigError,
    GeminiRejected,
    MalformedOutput,
    RateLimited,
    rejected,
)
from tasks.ocr import OcrFailed
from tasks.pages.images import EmptyPdf, TooManyPages
from tasks.queue.client import QueueError
from tasks.queue.jobs import InvalidJob
from tasks.queue.table import LeaseLost
from tasks.registry.errors import (
    AccountStoreError,
    DocumentNotFound,
    NoAccountAvailable,
    SiteUnavailable,
)
from tasks.request import InvalidRequest


@pytest.mark.parametrize(
    ("exc", "fate", "message"),
    [
        (QueueError("Supabase did not answer"), Fate.WAIT, "service unavailable: Supabase"),
        (LeaseLost("taken back"), Fate.WAIT, "service unavailable: taken back"),
        (ConfigError("GEMINI_PRICES: not JSON"), Fate.WAIT, "configuration: GEMINI_PRICES"),
        (CapacityExceeded(WorkerKind.ACTE_OCR, "global", 1, 0), Fate.WAIT, "service unavailable"),
        (RateLimitTimeout("no room", 12), Fate.WAIT, "service unavailable: no room"),
        (RateLimited("429", 30), Fate.WAIT, "Gemini unavailable: 429"),
        (GeminiConfigError(), Fate.WAIT, "Gemini configuration: No Gemini API key"),
        (NoAccountAvailable(), Fate.WAIT, "No registry account is free"),
        (AccountStoreError("down"), Fate.WAIT, "registry accounts: down"),
        (redis.ConnectionError("refused"), Fate.WAIT, "service unavailable: Redis: refused"),
        (SiteUnavailable("search: 500"), Fate.RETRY, "search: 500"),
        (MalformedOutput("not JSON"), Fate.RETRY, "Gemini's answer was unusable: not JSON"),
        (OcrFailed("3 pages for 4", permanent=False), Fate.RETRY, "3 pages for 4"),
        (DocumentNotFound("acte: inexistant"), Fate.ERROR, "acte: inexistant"),
        (EmptyPdf(), Fate.ERROR, "the PDF cannot be read: The PDF file is empty"),
        (TooManyPages("500 pages"), Fate.ERROR, "the PDF cannot be read: 500 pages"),
        (GeminiRejected("400 INVALID_ARGUMENT", 400), Fate.ERROR, "Gemini refused the document"),
        (OcrFailed("no row on page 2"), Fate.ERROR, "no row on page 2"),
        (InvalidRequest("document_number is empty"), Fate.ERROR, "document_number is empty"),
        (InvalidJob("supabase_path is empty"), Fate.ERROR, "invalid request: supabase_path"),
        (KeyError("status_id"), Fate.RETRY, "unexpected error: KeyError: 'status_id'"),
    ],
)
def test_every_failure_has_one_fate(exc: BaseException, fate: Fate, message: str) -> None:
    verdict = decide(exc, attempts=0, base_s=5)
    assert verdict.fate is fate
    assert verdict.message.startswith(message), verdict.message


def test_one_tree() -> None:
    for cls in (RetryLater, DocumentFailed, QueueError, GeminiRejected, EmptyPdf, ConfigError):
        assert issubclass(cls, Failure)
    assert not issubclass(RetryLater, DocumentFailed)


def test_waiting_takes_the_delay_the_service_asked_for() -> None:
    assert decide(RateLimited("429", 42.5), attempts=3, base_s=5).delay_s == 42
    assert decide(QueueError("down"), attempts=3, base_s=5).delay_s == 5  # no attempt counted


def test_a_failed_attempt_backs_off_and_a_permanent_one_does_not_wait() -> None:
    delays = [decide(SiteUnavailable(), attempts=n, base_s=5).delay_s for n in range(10)]
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == RETRY_MAX_SECONDS
    assert decide(DocumentNotFound(), attempts=2, base_s=5).delay_s == 0


def test_a_refused_key_or_model_waits_but_a_refused_request_fails() -> None:
    for status in (401, 403, 404):
        assert decide(rejected("refused", status), attempts=0, base_s=5).fate is Fate.WAIT
    assert decide(rejected("bad request", 400), attempts=0, base_s=5).fate is Fate.ERROR


def test_the_stored_evidence_is_named_in_the_message() -> None:
    error = SiteUnavailable("acte 123: 500")
    error.stored_evidence = ["registre-evidence/1/shot.png"]
    message = decide(error, attempts=0, base_s=5).message
    assert message == "acte 123: 500 (evidence: registre-evidence/1/shot.png)"
