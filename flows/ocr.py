"""The OCR stage: a downloaded document becomes raw, boosted and structured text.

python -m flows.ocr index|acte [--env dev] [--job-id UUID]
"""

from __future__ import annotations

import argparse
from collections import deque
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from redis import RedisError

from flows.common import (
    Failure,
    capacity_reserved,
    name_run_after,
    run_owner,
    settle_failure,
    this_host_registered,
)
from tasks.capacity import CapacityExceeded, WorkerKind
from tasks.gemini import (
    BadOutput,
    GeminiError,
    GeminiRejected,
    GeminiRetryLater,
    Usage,
    document_part,
)
from tasks.index_rows import IndexPage
from tasks.index_text import render_pages
from tasks.lease import LeaseKeeper
from tasks.ocr import Gemini, OcrFailed, boost_acte, boost_index, read_acte, read_index_page
from tasks.pages import PageOptions, PdfError, page_count
from tasks.pages import render_pages as page_images
from tasks.queue import Job, LeaseLost, Queue, QueueError, Stage
from tasks.ratelimit import RateLimitError
from tasks.settings import Settings, get_settings
from tasks.storage import Storage

KINDS = {"index": WorkerKind.INDEX_OCR, "acte": WorkerKind.ACTE_OCR}


@task(cache_policy=NO_CACHE, task_run_name="read-page-{number}")
def read_page(gemini: Gemini, number: int, jpeg: bytes) -> tuple[IndexPage, Usage]:
    page, result = read_index_page(gemini, jpeg)
    return page, result.usage


@task(cache_policy=NO_CACHE)
def fetch_pdf(job: Job, queue: Queue) -> bytes:
    assert job.supabase_path is not None  # parse_job refuses OCR rows without one
    return Storage(queue.client(job.env)).download(job.supabase_path, job.document_source)


@task(cache_policy=NO_CACHE)
def boost(gemini: Gemini, raw_text: str, pages: int) -> tuple[list[IndexPage], Usage]:
    boosted, result = boost_index(gemini, raw_text, pages)
    return boosted, result.usage


def read_all_pages(
    gemini: Gemini, job: Job, pdf: bytes, settings: Settings, lease: LeaseKeeper
) -> list[IndexPage]:
    """Pages rendered and read with at most `ocr_page_concurrency` in flight, in order; stops
    when the lease is lost (the row would be read twice)."""
    total = page_count(pdf)
    progress = create_progress_artifact(
        progress=0.0, key=f"ocr-progress-{job.id}", description=f"{job.label}: pages read"
    )
    pages: list[IndexPage] = []
    in_flight: deque[PrefectFuture[tuple[IndexPage, Usage]]] = deque()

    def collect_oldest() -> None:
        page, usage = in_flight.popleft().result()
        pages.append(page)
        update_progress_artifact(artifact_id=progress, progress=100.0 * len(pages) / total)
        get_run_logger().info(
            "page %d/%d: %d rows, %d tokens", len(pages), total, len(page.rows), usage.total_tokens
        )

    options = PageOptions(dpi=settings.ocr_dpi)
    for number, jpeg in page_images(pdf, options):
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
    gemini: Gemini, job: Job, pdf: bytes, settings: Settings, lease: LeaseKeeper
) -> dict[str, Any]:
    pages = read_all_pages(gemini, job, pdf, settings, lease)
    raw_text = render_pages(pages)
    boosted, _ = boost(gemini, raw_text, len(pages))
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
        "boosted_file_content": render_pages(boosted),
        "structured_content": {"pages": [page.model_dump() for page in boosted]},
    }


def ocr_acte_document(gemini: Gemini, job: Job, pdf: bytes) -> dict[str, Any]:
    pages = page_count(pdf)  # a corrupt or empty PDF fails here, before any Gemini call
    name = f"acte-{job.document_number}"
    with document_part(gemini.client, pdf, mime_type="application/pdf", display_name=name) as part:
        raw = read_acte(gemini, part, pages)
    boosted = boost_acte(gemini, raw.text)
    create_markdown_artifact(
        key=f"acte-{job.id}", markdown=boosted.text, description=f"{job.label}: boosted text"
    )
    return {"file_content": raw.text, "boosted_file_content": boosted.text}


SETUP_STATUS = (401, 403, 404)  # a revoked key or a wrong model name: not the document's fault


def failure(exc: Exception) -> tuple[str, Failure, float | None]:
    """(message for ocr_error, whose failure it is, retry delay asked for or None)."""
    if isinstance(exc, PdfError):
        return f"the PDF cannot be read: {exc}", Failure.PERMANENT, None
    if isinstance(exc, GeminiRejected) and exc.status_code in SETUP_STATUS:
        return f"Gemini configuration: {exc}", Failure.SERVICE, None
    if isinstance(exc, GeminiRejected):
        return f"Gemini refused the document: {exc}", Failure.PERMANENT, None
    if isinstance(exc, OcrFailed):
        return str(exc), Failure.PERMANENT if exc.permanent else Failure.DOCUMENT, None
    if isinstance(exc, BadOutput):
        return f"Gemini's answer was unusable: {exc}", Failure.DOCUMENT, None
    if isinstance(exc, GeminiRetryLater):
        return f"Gemini unavailable: {exc}", Failure.SERVICE, exc.retry_after_s
    if isinstance(exc, GeminiError | RateLimitError | QueueError | RedisError):
        return f"service unavailable: {type(exc).__name__}: {exc}", Failure.SERVICE, None
    return f"unexpected error: {type(exc).__name__}: {exc}", Failure.DOCUMENT, None


def ocr_one(kind: str, settings: Settings, owner: str, env: str | None, job_id: str | None):
    logger = get_run_logger()
    queue = Queue(settings)
    jobs = queue.claim(Stage.OCR, 1, owner, sources=(kind,), env=env, job_id=job_id)
    if not jobs:
        logger.info("no %s document ready for OCR", kind)
        return {"claimed": False}
    job = jobs[0]
    name_run_after(job)
    with LeaseKeeper(queue, job) as lease:
        try:
            gemini = Gemini.from_settings(settings)
            pdf = fetch_pdf(job, queue)
            if kind == "index":
                fields = ocr_index_document(gemini, job, pdf, settings, lease)
            else:
                fields = ocr_acte_document(gemini, job, pdf)
            lease.check()
        except LeaseLost:
            raise  # the row is another run's now: nothing of ours to write
        except Exception as exc:
            message, kind_of_failure, delay = failure(exc)
            settle_failure(queue, job, message, kind_of_failure, delay)
            logger.error("%s: %s", job.label, message)
            raise
    now = datetime.now(UTC).isoformat()
    queue.complete(
        job,
        queue.statuses.done,
        {
            **fields,
            "ocr_completed_at": now,
            "ocr_error": None,
            "ocr_attempts": int(job.row.get("ocr_attempts") or 0) + 1,
        },
    )
    logger.info("%s: OCR complete", job.label)
    return {"claimed": True, "env": job.env, "id": job.id, "status_id": queue.statuses.done}


def run_ocr(kind: str, env: str | None, job_id: str | None) -> dict[str, Any]:
    settings = get_settings()
    owner = run_owner(f"ocr-{kind}")
    try:
        with capacity_reserved(settings, KINDS[kind], owner):
            return ocr_one(kind, settings, owner, env, job_id)
    except CapacityExceeded as exc:
        get_run_logger().warning("not started: %s", exc)
        return {"claimed": False, "capacity": str(exc)}


@flow(name="ocr-index")
def ocr_index(env: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Read one downloaded index document page by page, boost it, write rows and texts back."""
    return run_ocr("index", env, job_id)


@flow(name="ocr-acte")
def ocr_acte(env: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Transcribe one downloaded acte from its whole PDF, boost it, write the texts back."""
    return run_ocr("acte", env, job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description="Read one downloaded document.")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--env", choices=["prod", "staging", "dev"])
    parser.add_argument("--job-id")
    args = parser.parse_args()
    flow_fn = ocr_index if args.kind == "index" else ocr_acte
    with this_host_registered(get_settings()):
        print(flow_fn(env=args.env, job_id=args.job_id))


if __name__ == "__main__":
    main()
