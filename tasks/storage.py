"""The Prefect tasks that move a document's files in and out of its environment's Storage
(tasks/queue/buckets.py)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from tasks.queue.buckets import EVIDENCE_BUCKET
from tasks.queue.jobs import Job
from tasks.queue.table import Queue

EVIDENCE_LINK_SECONDS = 7 * 24 * 3600


@task(cache_policy=NO_CACHE)
def store_pdf(job: Job, queue: Queue, pdf: bytes) -> str:
    storage = queue.storage(job.env)
    storage.ensure_buckets()
    return storage.upload_pdf(job, pdf)


@task(cache_policy=NO_CACHE)
def store_evidence(job: Job, queue: Queue, files: list[Path]) -> list[str]:
    """Upload the failure's screenshot and trace beside the job and link them in the UI."""
    storage = queue.storage(job.env)
    storage.ensure_buckets()
    stored = []
    for path in files:
        content_type = "image/png" if path.suffix == ".png" else "application/zip"
        stored_path = storage.upload(
            EVIDENCE_BUCKET, f"{job.id}/{path.name}", path.read_bytes(), content_type
        )
        stored.append(stored_path)
        link = storage.signed_url(stored_path, EVIDENCE_LINK_SECONDS)
        create_link_artifact(
            link=link, link_text=path.name, description=f"{job.label}: {path.name}"
        )
    return stored


@task(cache_policy=NO_CACHE, name="fetch_pdf")
def fetch_stored_pdf(job: Job, queue: Queue) -> bytes:
    """The downloaded PDF an OCR run reads."""
    assert job.supabase_path is not None  # parse_job refuses OCR rows without one
    return queue.storage(job.env).download(job.supabase_path, job.document_source)
