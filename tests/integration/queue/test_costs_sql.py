from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from tasks.queue.costs import DailyCost, ModelTokens, daily_costs, fresh_download
from tasks.queue.jobs import Job, Stage
from tasks.queue.statuses import SEED
from tasks.queue.table import Queue

FLASH, PRO = "gemini-2.5-flash", "gemini-2.5-pro"
ACTE = {
    "document_source": "acte",
    "document_number": "12 345 678",
    "acte_type": "Acte",
    "circonscription_fonciere": None,
}  # fmt: skip  (an empty circonscription is Montréal)


def insert(project: Any, **columns: Any) -> str:
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    rows = project.sql(f"INSERT INTO extraction_queue ({names}) VALUES ({marks}) RETURNING id",
                       tuple(columns.values()))  # fmt: skip
    return str(rows[0][0])


@pytest.fixture
def prod(supabase_projects):
    return supabase_projects["prod"]


@pytest.fixture
def queue(supabase_projects, make_settings):
    return Queue(make_settings(supabase_projects))


def downloaded(project: Any, queue: Queue, hours_ago: float = 2, **columns: Any) -> str:
    """A row as an earlier download left it, its PDF in Storage."""
    name = f"{uuid.uuid4().hex}.pdf"
    storage = queue.storage("prod")
    storage.ensure_buckets()
    path = storage.upload("actes", name, b"%PDF-1.4 earlier", "application/pdf")
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    values = {**ACTE, "status_id": SEED.ready_for_ocr, "supabase_path": path,
              "downloaded_at": at, **columns}  # fmt: skip
    return insert(project, **values)


def claimed(project: Any, queue: Queue, **columns: Any) -> Job:
    job_id = insert(project, **{**ACTE, "document_number": "12345678",
                                "circonscription_fonciere": "Montréal", **columns})  # fmt: skip
    (job,) = queue.claim(Stage.REGISTRE, 1, "test-owner", env="prod", job_id=job_id)
    return job


def test_a_request_finds_the_latest_fresh_download_of_the_same_document(prod, queue):
    downloaded(prod, queue, hours_ago=5)
    latest = downloaded(prod, queue, hours_ago=1)
    job = claimed(prod, queue)

    reuse = fresh_download(queue, job, max_age_hours=24)

    assert reuse is not None and reuse.row_id == latest
    assert reuse.supabase_path.startswith("actes/")
    assert fresh_download(queue, job, max_age_hours=0) is None  # reuse turned off


@pytest.mark.parametrize(
    ("earlier", "request_columns"),
    [
        ({"downloaded_at": datetime.now(UTC) - timedelta(hours=30)}, {}),  # too old
        ({"circonscription_fonciere": "Laval"}, {}),
        ({}, {"acte_type": "Radiation"}),
        ({}, {"designation_secondaire": "Lot 4"}),
        ({"document_number": "12 345 679"}, {}),
        ({"status_id": SEED.error}, {}),  # its PDF may be what failed
        ({"supabase_path": None}, {}),
    ],
)
def test_a_different_or_stale_or_failed_download_is_not_reused(prod, queue, earlier,
                                                               request_columns):  # fmt: skip
    downloaded(prod, queue, **earlier)
    job = claimed(prod, queue, **request_columns)

    assert fresh_download(queue, job, max_age_hours=24) is None


def test_only_original_downloads_count_so_freshness_is_the_pdfs_age(prod, queue):
    original = downloaded(prod, queue, hours_ago=20)
    downloaded(prod, queue, hours_ago=1, reused_from=original)
    job = claimed(prod, queue)

    reuse = fresh_download(queue, job, max_age_hours=24)
    assert reuse is not None and reuse.row_id == original
    assert fresh_download(queue, job, max_age_hours=10) is None


def test_a_download_whose_pdf_left_storage_is_not_reused(prod, queue):
    earlier = downloaded(prod, queue)
    prod.sql("UPDATE extraction_queue SET supabase_path = 'actes/gone.pdf' WHERE id = %s",
             (earlier,))  # fmt: skip
    job = claimed(prod, queue)

    assert fresh_download(queue, job, max_age_hours=24) is None


def test_a_days_costs_per_environment_are_summed_in_sql(supabase_projects, queue):
    prod = supabase_projects["prod"]
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    usage = {FLASH: {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.0008},
             PRO: {"input_tokens": 3000, "output_tokens": 900, "cost_usd": 0.01275}}  # fmt: skip
    paid = insert(
        prod,
        document_source="acte",
        downloaded_at=today,
        registry_cost_usd=1.5,
        gemini_usage=Jsonb(usage),
        gemini_cost_usd=0.01355,
        gemini_cost_at=today,
    )
    insert(
        prod,
        document_source="acte",
        downloaded_at=today,
        registry_cost_usd=0,
        reused_from=paid,
        gemini_usage=Jsonb({FLASH: usage[FLASH]}),
        gemini_cost_usd=0.0008,
        gemini_cost_at=today,
    )
    insert(
        prod,
        document_source="index",
        downloaded_at=yesterday,
        registry_cost_usd=1.5,
        gemini_usage=Jsonb(usage),
        gemini_cost_usd=0.01355,
        gemini_cost_at=today,
    )
    insert(prod, document_source="index", downloaded_at=yesterday, registry_cost_usd=1.5)

    costs = daily_costs(queue, today.date())

    assert list(costs) == ["prod", "dev"]
    assert costs["prod"] == DailyCost(
        day=today.date(), documents=3, downloads=1, reused=1, registry_usd=1.5,
        gemini_usd=pytest.approx(0.0279), tokens={
            FLASH: ModelTokens(input_tokens=3000, output_tokens=600,
                               cost_usd=pytest.approx(0.0024)),
            PRO: ModelTokens(input_tokens=6000, output_tokens=1800,
                             cost_usd=pytest.approx(0.0255)),
        },
    )  # fmt: skip
    assert costs["prod"].total_usd == pytest.approx(1.5279)
    assert costs["dev"] == DailyCost(day=today.date(), documents=0, downloads=0, reused=0,
                                     registry_usd=0.0, gemini_usd=0.0)  # fmt: skip
    before = daily_costs(queue, yesterday.date())["prod"]
    assert (before.documents, before.downloads, before.registry_usd) == (2, 2, 3.0)
    assert before.gemini_usd == 0 and before.tokens == {}
    assert daily_costs(queue, date(2001, 1, 1))["prod"].documents == 0
