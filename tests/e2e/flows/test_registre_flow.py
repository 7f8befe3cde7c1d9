from __future__ import annotations

import asyncio

import pypdfium2 as pdfium
import pytest
from prefect import flow_engine, get_client

from flows.registre import registre
from sandbox.registry import control
from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS, render_pdf
from tasks.control.dispatch import ControlPlane, stopping
from tasks.queue.statuses import SEED
from tasks.settings import load_settings

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[0]
ACTE = next(a for a in ACTES if not a.paper_only)
PLAN = PLANS[0]


def run_flow(**params):
    return asyncio.run(registre(**params))


def page_bitmaps(pdf: bytes) -> list[bytes]:
    """What a reader sees, page by page (the PDFs' metadata, e.g. creation dates, may differ)."""
    document = pdfium.PdfDocument(pdf)
    return [page.render(scale=0.2).to_pil().tobytes() for page in document]


@pytest.mark.parametrize(
    ("source", "columns", "expected", "bucket", "status"),
    [
        (
            "index",
            {
                "document_number": INDEX.lot,
                "circonscription_fonciere": INDEX.circonscription,
                "cadastre": INDEX.cadastre,
            },
            INDEX,
            "index",
            SEED.ready_for_ocr,
        ),
        (
            "acte",
            {
                "document_number": ACTE.numero,
                "circonscription_fonciere": ACTE.circonscription,
                "acte_type": ACTE.type_document,
            },
            ACTE,
            "actes",
            SEED.ready_for_ocr,
        ),
        (
            "plan_cadastraux",
            {
                "document_number": PLAN.lot,
                "cadastre": PLAN.cadastre,
                "circonscription_fonciere": PLAN.circonscription,
            },
            PLAN.versions[-1],
            "plans-cadastraux",
            SEED.done,
        ),
    ],
)
def test_a_waiting_row_becomes_a_pdf_in_storage(
    pipeline, source, columns, expected, bucket, status
):
    job_id = pipeline.insert(source, **columns)

    result = run_flow(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert result["id"] == job_id and row["status_id"] == status, row["error_message"]
    assert row["supabase_path"].startswith(f"{bucket}/")
    assert row["lease_expires_at"] is None and row["downloaded_at"] is not None
    stored = pipeline.download(row["supabase_path"])
    assert page_bitmaps(stored) == page_bitmaps(render_pdf(expected))


def test_a_document_that_does_not_exist_ends_in_error_with_the_registry_message(pipeline):
    job_id = pipeline.insert(
        "index",
        document_number="9 999 999",
        circonscription_fonciere="Montréal",
        cadastre="Cadastre du Québec",
    )

    with pytest.raises(Exception, match="inexistante"):
        run_flow(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error and row["attemtps"] == 1
    assert "La fiche immobilière demandée est inexistante" in row["error_message"]
    assert "evidence: registre-evidence/" in row["error_message"]


def test_an_unknown_circonscription_ends_in_error(pipeline):
    job_id = pipeline.insert(
        "index",
        document_number=INDEX.lot,
        circonscription_fonciere="Atlantide",
        cadastre="Cadastre du Québec",
    )

    with pytest.raises(Exception):  # noqa: B017 - the flow re-raises the driver's error
        run_flow(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.error
    assert "Atlantide" in row["error_message"]


def index_row_in_an_outage(pipeline) -> str:
    """A waiting index row, the registry failing its next searches."""
    control.set_faults(pipeline.registry, fail_next_searches=10)
    return pipeline.insert(
        "index",
        document_number=INDEX.lot,
        circonscription_fonciere=INDEX.circonscription,
        cadastre=INDEX.cadastre,
    )


def test_a_registry_outage_is_retried_later_and_counted(pipeline):
    job_id = index_row_in_an_outage(pipeline)

    with pytest.raises(Exception):  # noqa: B017
        run_flow(env="prod", job_id=job_id)

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.waiting and row["attemtps"] == 1
    assert row["retry_after"] is not None and row["error_message"]


def test_a_failure_while_its_host_stops_the_run_gives_the_row_back_uncounted(pipeline):
    """A host stopping a run (deployments/worker.py) can break its work before the engine sees
    the signal: Chromium closed under the download, seen as an ordinary failure."""
    job_id = index_row_in_an_outage(pipeline)
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(registre, parameters={"env": "prod", "job_id": job_id})
    with ControlPlane.open(load_settings()) as cp:
        stopping(cp, [str(flow_run.id)])

    with pytest.raises(Exception):  # noqa: B017
        asyncio.run(flow_engine.run_flow(registre, flow_run, {"env": "prod", "job_id": job_id}))

    row = pipeline.row(job_id)
    assert row["status_id"] == SEED.waiting and row["attemtps"] == 0
    assert row["lease_expires_at"] is None
    assert "stopped during the run" in row["error_message"]


def test_an_expired_session_is_renewed_and_the_document_still_arrives(pipeline):
    first = pipeline.insert(
        "index",
        document_number=INDEX.lot,
        circonscription_fonciere=INDEX.circonscription,
        cadastre=INDEX.cadastre,
    )
    run_flow(env="prod", job_id=first)
    control.expire_sessions(pipeline.registry)
    second = pipeline.insert(
        "acte",
        document_number=ACTE.numero,
        circonscription_fonciere=ACTE.circonscription,
        acte_type=ACTE.type_document,
    )

    run_flow(env="prod", job_id=second)

    assert pipeline.row(second)["status_id"] == SEED.ready_for_ocr
    assert control.counters(pipeline.registry)["sessions_expired"] >= 1


def test_a_second_document_reuses_the_logged_in_session(pipeline):
    for doc in (INDEX, INDEX_DOCUMENTS[2]):
        job_id = pipeline.insert(
            "index",
            document_number=doc.lot,
            circonscription_fonciere=doc.circonscription,
            cadastre=doc.cadastre,
        )
        run_flow(env="prod", job_id=job_id)
        assert pipeline.row(job_id)["status_id"] == SEED.ready_for_ocr

    logins = control.counters(pipeline.registry)["logins"]
    assert sum(logins.values()) == 1


def test_a_run_whose_row_is_not_waiting_ends_skipped_saying_why(pipeline):
    job_id = pipeline.insert("index", status_id=SEED.done, **{
        "document_number": INDEX.lot, "circonscription_fonciere": INDEX.circonscription,
        "cadastre": INDEX.cadastre})  # fmt: skip

    state = run_flow(env="prod", job_id=job_id, return_state=True)

    assert state.is_completed() and state.name == "Skipped"
    assert f"row {job_id} is in status {SEED.done}" in state.message
    assert pipeline.row(job_id)["status_id"] == SEED.done
