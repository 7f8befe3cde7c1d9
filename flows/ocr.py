"""The OCR stage: a downloaded document becomes raw, boosted and structured text.

python -m flows.ocr index|acte --env dev --job-id UUID
"""

from __future__ import annotations

import argparse
from collections import deque
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture

from flows.common import HOOKS, document_run, this_host_registered
from tasks.control.pools import OCR_ACTE, OCR_INDEX, DocumentDeployment
from tasks.gemini.caller import GeminiCaller
from tasks.gemini.files import document_part
from tasks.gemini.generate import GenerateResult
from tasks.gemini.pricing import GeminiBill, price_table
from tasks.ocr import (
    OcrFailed,
    boost,
    boost_transcription,
    gemini_caller,
    read_page,
    transcribe,
)
from tasks.pages.images import PageOptions, check_page_count, render_pages
from tasks.pages.index_rows import IndexPage
from tasks.pages.index_text import format_pages
from tasks.queue.jobs import Job
from tasks.queue.row_lease import LeaseKeeper
from tasks.queue.table import Queue
from tasks.settings import Settings, load_settings
from tasks.storage import fetch_stored_pdf


def read_all_pages(
    gemini: GeminiCaller, job: Job, pdf: bytes, settings: Settings, lease: LeaseKeeper,
    bill: GeminiBill,
) -> list[IndexPage]:  # fmt: skip
    """Pages rendered and read with at most `ocr_page_concurrency` in flight, in order; stops
    when the lease is lost (the row would be read twice)."""
    total = check_page_count(pdf, settings.ocr_max_pages)
    progress = create_progress_artifact(
        progress=0.0, key=f"ocr-progress-{job.id}", description=f"{job.label}: pages read"
    )
    pages: list[IndexPage] = []
    in_flight: deque[PrefectFuture[tuple[IndexPage, GenerateResult]]] = deque()

    def collect_oldest() -> None:
        page, result = in_flight.popleft().result()
        cost = bill.add(result.model, result.usage)
        pages.append(page)
        update_progress_artifact(artifact_id=progress, progress=100.0 * len(pages) / total)
        get_run_logger().info(
            "page %d/%d: %d rows, %d tokens, $%.4f", len(pages), total, len(page.rows),
            result.usage.total_tokens, cost,
        )  # fmt: skip

    options = PageOptions(dpi=settings.ocr_dpi)
    for number, jpeg in render_pages(pdf, options):
        lease.check()
        if len(in_flight) >= settings.ocr_page_concurrency:
            collect_oldest()
        in_flight.append(read_page.submit(gemini, number, jpeg))
    while in_flight:
        collect_oldest()
    unreadable = [n for n, page in enumerate(pages, start=1) if not page.rows]
    if unreadable:
        raise OcrFailed(f"Gemini could not read any row on page(s) {unreadable} of {total}")
    return pages


def ocr_index_document(
    gemini: GeminiCaller, job: Job, pdf: bytes, settings: Settings, lease: LeaseKeeper,
    bill: GeminiBill,
) -> dict[str, Any]:  # fmt: skip
    pages = read_all_pages(gemini, job, pdf, settings, lease, bill)
    raw_text = format_pages(pages)
    boosted, result = boost(gemini, raw_text, len(pages))
    bill.add(result.model, result.usage)
    create_table_artifact(
        key=f"index-rows-{job.id}",
        table=[
            {"page": n, **row.model_dump(exclude={"parties"}),
             "parties": "; ".join(f"{p.name} ({p.role or '?'})" for p in row.parties)}
            for n, page in enumerate(boosted, start=1)
            for row in page.rows
        ],
        description=f"{job.label}: index rows after the boost",
    )  # fmt: skip
    return {
        "file_content": raw_text,
        "boosted_file_content": format_pages(boosted),
        "structured_content": {"pages": [page.model_dump() for page in boosted]},
    }


def ocr_acte_document(
    gemini: GeminiCaller, job: Job, pdf: bytes, max_pages: int, bill: GeminiBill
) -> dict[str, Any]:
    pages = check_page_count(pdf, max_pages)  # a bad PDF fails here, before any Gemini call
    name = f"acte-{job.document_number}"
    with document_part(gemini.client, pdf, mime_type="application/pdf", display_name=name) as part:
        transcription = transcribe(gemini, part, pages)
    bill.add(transcription.model, transcription.usage)
    raw = transcription.text
    boosting = boost_transcription(gemini, raw)
    bill.add(boosting.model, boosting.usage)
    boosted = boosting.text
    create_markdown_artifact(
        key=f"acte-{job.id}", markdown=boosted, description=f"{job.label}: boosted text"
    )
    return {"file_content": raw, "boosted_file_content": boosted}


def ocr_document(deployment: DocumentDeployment, env: str, job_id: str) -> Any:
    with document_run(deployment, env, job_id) as run:
        if run.job is None or run.lease is None:
            return run.skipped
        job, settings = run.job, run.settings
        gemini = gemini_caller(settings, run.redis)
        bill = GeminiBill(price_table(settings.gemini_prices))
        try:
            pdf = fetch_stored_pdf(job, run.queue)
            if deployment is OCR_INDEX:
                texts = ocr_index_document(gemini, job, pdf, settings, run.lease, bill)
            else:
                texts = ocr_acte_document(gemini, job, pdf, settings.ocr_max_pages, bill)
            run.lease.check()
        except Exception:
            record_failed_spend(run.queue, job, bill)  # paid for even though the run failed
            raise
        spend = spend_columns(job, bill)
        status = run.queue.mark_ocr_done(job, {**texts, **spend})
    show_spend(job, bill, spend["gemini_cost_usd"])
    get_run_logger().info("%s: OCR complete", job.label)
    return {"env": job.env, "id": job.id, "status_id": status}


def spend_columns(job: Job, bill: GeminiBill) -> dict[str, Any]:
    """The row's Gemini spending: earlier attempts' (on the row) plus this run's."""
    return {**bill.columns(job.gemini_usage), "gemini_cost_at": _now()}


def record_failed_spend(queue: Queue, job: Job, bill: GeminiBill) -> None:
    """Best effort: the failure itself is what must reach the row, and it is being raised."""
    if not bill.models:
        return
    try:
        queue.record(job, spend_columns(job, bill))
        show_spend(job, bill, None)
    except Exception as exc:
        get_run_logger().warning("%s: Gemini spending not recorded: %s: %s", job.label,
                                 type(exc).__name__, exc)  # fmt: skip


def show_spend(job: Job, bill: GeminiBill, document_usd: float | None) -> None:
    """The run's Gemini tokens and cost, per model, in its artifacts and its log."""
    rows = bill.rows()
    create_table_artifact(
        key=f"ocr-cost-{job.id}",
        table=[*rows, {"model": "total", "input tokens": sum(r["input tokens"] for r in rows),
                       "output tokens": sum(r["output tokens"] for r in rows),
                       "USD": bill.total_usd}],
        description=f"{job.label}: Gemini tokens and cost of this run (output includes thinking)",
    )  # fmt: skip
    spent = "; ".join(
        f"{r['model']} {r['input tokens']} in / {r['output tokens']} out ${r['USD']:.4f}"
        for r in rows
    )
    so_far = "" if document_usd is None else f", ${document_usd:.4f} for the document so far"
    get_run_logger().info("%s: Gemini %s: $%.4f this run%s", job.label, spent or "no call",
                          bill.total_usd, so_far)  # fmt: skip


@flow(name=OCR_INDEX.flow, **HOOKS)
def ocr_index(env: str, job_id: str) -> Any:
    """Read the downloaded index document `job_id` page by page, boost it, write rows and texts
    back."""
    return ocr_document(OCR_INDEX, env, job_id)


@flow(name=OCR_ACTE.flow, **HOOKS)
def ocr_acte(env: str, job_id: str) -> Any:
    """Transcribe the downloaded acte `job_id` from its whole PDF, boost it, write the texts
    back."""
    return ocr_document(OCR_ACTE, env, job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description="Read one downloaded document now.")
    parser.add_argument("kind", choices=["index", "acte"])
    parser.add_argument("--env", choices=["prod", "staging", "dev"], required=True)
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args()
    flow_fn = ocr_index if args.kind == "index" else ocr_acte
    with this_host_registered(load_settings()):
        print(flow_fn(env=args.env, job_id=args.job_id))


def _now() -> str:
    return datetime.now(UTC).isoformat()


if __name__ == "__main__":
    main()
