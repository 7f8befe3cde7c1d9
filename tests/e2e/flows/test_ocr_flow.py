from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from flows.ocr import ocr_acte, ocr_index
from sandbox import gemini as gemini_standin
from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, acte_text, render_pdf
from tasks.pages.index_rows import IndexPage
from tasks.pages.index_text import format_pages, parse_pages
from tasks.queue.statuses import SEED
from tasks.settings import load_settings

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[1]  # three pages
ACTE = next(a for a in ACTES if not a.paper_only)


def index_row(pipeline, pdf: bytes | None = None) -> str:
    pdf = render_pdf(INDEX) if pdf is None else pdf
    return pipeline.downloaded("index", pdf, document_number=INDEX.lot,
                               circonscription_fonciere=INDEX.circonscription,
                               cadastre=INDEX.cadastre)  # fmt: skip


def acte_row(pipeline, pdf: bytes | None = None) -> str:
    pdf = render_pdf(ACTE) if pdf is None else pdf
    return pipeline.downloaded("acte", pdf, document_number=ACTE.numero,
                               circonscription_fonciere=ACTE.circonscription,
                               acte_type=ACTE.type_document)  # fmt: skip


def faults(pipeline, **values) -> None:
    httpx.post(f"{pipeline.gemini}/_sandbox/faults", json=values).raise_for_status()


def test_an_index_document_is_read_into_the_catalogues_rows(pipeline):
    job_id = index_row(pipeline)

    result = ocr_index(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert result["id"] == job_id and row["status_id"] == SEED.done, row["ocr_error"]
    expected = list(INDEX.pages)
    assert parse_pages(row["file_content"]) == expected
    assert row["boosted_file_content"] == format_pages(expected)
    pages = [IndexPage.model_validate(p) for p in row["structured_content"]["pages"]]
    assert pages == expected
    assert row["ocr_attempts"] == 1 and row["ocr_error"] is None
    assert row["ocr_completed_at"] is not None and row["lease_expires_at"] is None


def test_an_acte_is_transcribed_with_its_parties_and_numbers(pipeline):
    job_id = acte_row(pipeline)

    ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.done, row["ocr_error"]
    for party in ACTE.parties:
        assert party.name in row["file_content"]
    assert ACTE.numero in row["file_content"]
    assert acte_text(ACTE).splitlines()[0] in row["file_content"]
    assert row["boosted_file_content"] and row["structured_content"] is None


def test_truncated_output_is_an_error_not_a_result_and_is_retried_later(pipeline):
    job_id = acte_row(pipeline)
    faults(pipeline, truncate_count=1)

    with pytest.raises(Exception, match="MAX_TOKENS"):
        ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.ready_for_ocr and row["ocr_attempts"] == 1
    assert "MAX_TOKENS" in row["ocr_error"] and row["file_content"] is None


def test_malformed_json_fails_the_attempt_and_attempts_run_out_into_error(pipeline):
    job_id = index_row(pipeline)
    pipeline.project.sql(
        "UPDATE extraction_queue SET ocr_max_attempts = 2 WHERE id = %s", (job_id,)
    )
    for attempt in (1, 2):
        faults(pipeline, malformed_json_count=1)
        pipeline.project.sql("UPDATE extraction_queue SET retry_after = NULL")
        with pytest.raises(Exception, match="invalid JSON"):
            ocr_index(env="prod", job_id=job_id)
        assert pipeline.row(job_id)["ocr_attempts"] == attempt

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error and "invalid JSON" in row["ocr_error"]


def test_server_errors_are_retried_within_the_call(pipeline):
    job_id = acte_row(pipeline)
    faults(pipeline, error_status=503, error_count=2)  # GEMINI_MAX_ATTEMPTS is 3

    ocr_acte(env="prod", job_id=job_id)

    assert pipeline.row(job_id)["status_id"] == SEED.done


def test_a_permanent_refusal_goes_straight_to_error(pipeline):
    job_id = acte_row(pipeline)
    faults(pipeline, invalid_argument_match="TEXTE BRUT")  # the boost request is refused

    with pytest.raises(Exception, match="400 INVALID_ARGUMENT"):
        ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error and row["ocr_attempts"] == 1
    assert row["ocr_error"].startswith("Gemini refused the document")


@pytest.mark.parametrize(
    ("pdf", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 this is not really a pdf", "cannot be read"),
        (b"<html>Service indisponible</html>", "cannot be read"),
    ],
)
def test_a_corrupt_or_empty_pdf_ends_in_error_without_calling_gemini(pipeline, pdf, message):
    job_id = acte_row(pipeline, pdf)

    with pytest.raises(Exception):  # noqa: B017
        ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error
    assert row["ocr_error"].startswith("the PDF cannot be read") and message in row["ocr_error"]
    assert httpx.get(f"{pipeline.gemini}/_sandbox/stats").json()["requests"] == 0


def test_a_page_gemini_cannot_read_ends_in_error_naming_the_page(pipeline):
    blank = io.BytesIO()
    Image.new("L", (1200, 900), color=200).save(blank, format="PDF")
    job_id = index_row(pipeline, blank.getvalue())

    with pytest.raises(Exception, match="page"):
        ocr_index(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error
    assert "could not read any row on page(s) [1] of 1" in row["ocr_error"]


def test_a_429_pauses_for_the_servers_retry_delay_then_succeeds(pipeline, monkeypatch, gemini_key):
    # A Gemini whose quota is one request per 3 s window and model, below what our limiter
    # allows: the acte's second call (the boost, same model here) gets a 429 with retryDelay.
    with gemini_standin.serve(gemini_key, rpm=1, tpm=10_000_000, window_s=3) as strict:
        monkeypatch.setenv("GEMINI_BASE_URL", strict)
        monkeypatch.setenv("GEMINI_BOOST_MODEL", load_settings().gemini_extract_model)
        job_id = acte_row(pipeline)
        started = time.monotonic()

        ocr_acte(env="prod", job_id=job_id)

        stats = httpx.get(f"{strict}/_sandbox/stats").json()
    assert pipeline.row(job_id)["status_id"] == SEED.done
    assert stats["rate_limited"] >= 1
    assert time.monotonic() - started >= 1.0


def test_gemini_down_gives_the_document_back_without_spending_an_attempt(pipeline):
    job_id = acte_row(pipeline)
    faults(pipeline, error_status=503, error_count=10)  # more than GEMINI_MAX_ATTEMPTS

    with pytest.raises(Exception, match="503"):
        ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.ready_for_ocr and row["ocr_attempts"] == 0
    assert row["ocr_error"].startswith("Gemini unavailable") and row["retry_after"] is not None
