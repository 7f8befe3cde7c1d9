from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from supabase import Client

from tasks.queue.client import with_network_retries
from tasks.queue.jobs import Job
from tasks.queue.paths import (
    ALL_BUCKETS,
    EVIDENCE_BUCKET,
    PDF,
    bucket_for,
    object_name,
    parse_supabase_path,
)
from tasks.queue.table import Queue

EVIDENCE_LINK_SECONDS = 7 * 24 * 3600


class Storage:
    """The document buckets of one environment."""

    _ready: ClassVar[set[str]] = set()  # projects whose buckets this process has checked

    def __init__(self, client: Client) -> None:
        self.client = client

    def ensure_buckets(self) -> None:
        """Create the private buckets that are missing (a new environment has none); checked
        once per project and process."""
        project = str(self.client.supabase_url)
        if project in self._ready:
            return
        existing = {b.id for b in with_network_retries(self.client.storage.list_buckets, "buckets")}
        for bucket in ALL_BUCKETS:
            if bucket not in existing:
                self.client.storage.create_bucket(bucket, options={"public": False})
        self._ready.add(project)

    def upload_pdf(self, job: Job, pdf: bytes) -> str:
        """Upload the document's PDF; returns the `supabase_path` to store (`bucket/file`)."""
        bucket = bucket_for(job.document_source)
        name = object_name(job)
        return self.upload(bucket, name, pdf, PDF)

    def upload(self, bucket: str, name: str, data: bytes, content_type: str) -> str:
        files = self.client.storage.from_(bucket)
        options = {"content-type": content_type, "upsert": "true"}
        with_network_retries(lambda: files.upload(name, data, options), f"upload {bucket}/{name}")
        return f"{bucket}/{name}"

    def signed_url(self, stored_path: str, expires_in_seconds: int) -> str:
        bucket, name = stored_path.split("/", 1)
        files = self.client.storage.from_(bucket)
        signed = with_network_retries(
            lambda: files.create_signed_url(name, expires_in_seconds), f"sign {stored_path}"
        )
        return signed["signedURL"]

    def download(self, supabase_path: str, document_source: str) -> bytes:
        bucket, name = parse_supabase_path(supabase_path, document_source)
        files = self.client.storage.from_(bucket)
        return with_network_retries(lambda: files.download(name), f"download {bucket}/{name}")


# The Prefect tasks that move a document's files in and out of its environment's Storage.


@task(cache_policy=NO_CACHE)
def store_pdf(job: Job, queue: Queue, pdf: bytes) -> str:
    storage = Storage(queue.client(job.env))
    storage.ensure_buckets()
    return storage.upload_pdf(job, pdf)


@task(cache_policy=NO_CACHE)
def store_evidence(job: Job, queue: Queue, files: list[Path]) -> list[str]:
    """Upload the failure's screenshot and trace beside the job and link them in the UI."""
    storage = Storage(queue.client(job.env))
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
    return Storage(queue.client(job.env)).download(job.supabase_path, job.document_source)
