from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.ocr import ocr_acte, ocr_index
from flows.registre import registre
from sandbox.registry import control
from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, render_pdf
from tasks.gemini.pricing import DEFAULT_PRICES
from tasks.queue.costs import daily_costs
from tasks.queue.statuses import SEED
from tasks.queue.table import Queue
from tasks.settings import load_settings

pytestmark = pytest.mark.slow

ACTE = next(a for a in ACTES if not a.paper_only)
INDEX = INDEX_DOCUMENTS[0]
FEE_USD = "1.75"


def acte_columns() -> dict[str, str]:
    return {"document_number": ACTE.numero, "circonscription_fonciere": ACTE.circonscription,
            "acte_type": ACTE.type_document}  # fmt: skip


def index_columns() -> dict[str, str]:
    return {"document_number": INDEX.lot, "circonscription_fonciere": INDEX.circonscription,
            "cadastre": INDEX.cadastre}  # fmt: skip


def artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort="CREATED_DESC", limit=1)  # fmt: skip
    assert found, f"no artifact {key}"
    return str(found[0].data)


def gemini_calls(gemini_url: str) -> dict[str, list[dict]]:
    """The Gemini stand-in's own log of the answered calls, per model."""
    log = httpx.get(f"{gemini_url}/_sandbox/stats").json()["log"]
    calls: dict[str, list[dict]] = defaultdict(list)
    for call in log:
        if call["model"] and call["status"] == 200:
            calls[call["model"]].append(call)
    return calls


@pytest.fixture
def priced(monkeypatch):
    """A registry fee, and a host big enough for a download whatever this machine's size
    (before `pipeline` registers the host)."""
    for name, value in {"REGISTRY_FEE_USD": FEE_USD, "SERVER_MAX_CPU": "8",
                        "SERVER_MAX_RAM": "16"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def test_a_downloaded_and_read_acte_carries_its_tokens_and_cost(priced, pipeline):
    job_id = pipeline.insert("acte", **acte_columns())

    asyncio.run(registre(env="prod", job_id=job_id))
    ocr_acte(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.done, row["ocr_error"]
    assert row["registry_cost_usd"] == float(FEE_USD) and row["reused_from"] is None
    calls = gemini_calls(pipeline.gemini)
    assert set(calls) == {"gemini-2.5-flash", "gemini-2.5-pro"}  # transcription, then boost
    expected_usd = 0.0
    for model, answered in calls.items():
        spent = row["gemini_usage"][model]
        assert spent["input_tokens"] == sum(c["prompt_tokens"] for c in answered) > 0
        assert spent["output_tokens"] == sum(c["output_tokens"] for c in answered) > 0
        usd = sum(DEFAULT_PRICES[model].cost_usd(c["prompt_tokens"], c["output_tokens"])
                  for c in answered)  # fmt: skip
        assert spent["cost_usd"] == pytest.approx(usd, abs=1e-6)
        expected_usd += usd
    assert row["gemini_cost_usd"] == pytest.approx(expected_usd, abs=1e-6)
    assert row["gemini_cost_at"] is not None

    table = artifact(f"ocr-cost-{job_id}")
    assert "gemini-2.5-pro" in table and "gemini-2.5-flash" in table and "total" in table
    assert "downloaded from the registry" in artifact(f"registry-cost-{job_id}")

    today = daily_costs(Queue(load_settings()), datetime.now(UTC).date())["prod"]
    assert (today.documents, today.downloads, today.reused) == (1, 1, 0)
    assert today.registry_usd == float(FEE_USD)
    assert today.gemini_usd == pytest.approx(row["gemini_cost_usd"], abs=1e-6)
    assert (
        today.tokens["gemini-2.5-pro"].input_tokens
        == row["gemini_usage"]["gemini-2.5-pro"]["input_tokens"]
    )


def test_a_second_request_within_freshness_reuses_the_pdf_and_pays_nothing(priced, pipeline):
    first = pipeline.insert("acte", **acte_columns())
    asyncio.run(registre(env="prod", job_id=first))
    before = control.counters(pipeline.registry)
    assert before["downloads"] == 1

    second = pipeline.insert("acte", **acte_columns())
    result = asyncio.run(registre(env="prod", job_id=second))

    after = control.counters(pipeline.registry)  # the registry was not even visited
    assert (after["downloads"], after["pages"]) == (1, before["pages"])
    earlier, row = pipeline.row(first), pipeline.row(second)
    assert row["status_id"] == earlier["status_id"] == SEED.ready_for_ocr
    assert row["supabase_path"] == earlier["supabase_path"] and row["downloaded_at"]
    assert row["reused_from"] == first == result["reused_from"]
    assert row["registry_cost_usd"] == 0 and row["lease_expires_at"] is None
    assert f"reused the PDF of row {first}" in artifact(f"registry-cost-{second}")

    ocr_acte(env="prod", job_id=second)  # and it is read as after a download
    assert pipeline.row(second)["status_id"] == SEED.done

    today = daily_costs(Queue(load_settings()), datetime.now(UTC).date())["prod"]
    assert (today.downloads, today.reused, today.registry_usd) == (1, 1, float(FEE_USD))


def test_an_index_is_downloaded_again_unless_its_reuse_is_asked_for(priced, pipeline, monkeypatch):
    for _ in range(2):
        asyncio.run(registre(env="prod", job_id=pipeline.insert("index", **index_columns())))
    assert control.counters(pipeline.registry)["downloads"] == 2  # an index changes

    monkeypatch.setenv("REUSE_INDEX_DOWNLOADS", "true")
    third = pipeline.insert("index", **index_columns())
    asyncio.run(registre(env="prod", job_id=third))
    assert control.counters(pipeline.registry)["downloads"] == 2
    assert pipeline.row(third)["reused_from"] is not None


def test_a_failed_read_still_records_what_gemini_was_paid(priced, pipeline):
    job_id = pipeline.downloaded("index", render_pdf(INDEX), **index_columns())
    httpx.post(
        f"{pipeline.gemini}/_sandbox/faults", json={"invalid_argument_match": "TEXTE BRUT"}
    ).raise_for_status()  # the boost

    with pytest.raises(Exception, match="400 INVALID_ARGUMENT"):
        ocr_index(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error
    pages = gemini_calls(pipeline.gemini)["gemini-2.5-flash"]
    assert len(pages) == len(INDEX.pages)
    assert set(row["gemini_usage"]) == {"gemini-2.5-flash"}  # a refused call is not billed
    assert row["gemini_usage"]["gemini-2.5-flash"]["input_tokens"] == sum(
        c["prompt_tokens"] for c in pages
    )
    assert row["gemini_cost_usd"] > 0
    assert "gemini-2.5-flash" in artifact(f"ocr-cost-{job_id}")
