from __future__ import annotations

import re
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from supabase import Client

from tasks.jobs import Job
from tasks.queue import Queue
from tasks.supabase_client import with_network_retries

# document_source -> bucket; anything else goes to `index`, as the seed system did (DOMAIN.md §1.4).
BUCKETS = {"index": "index", "acte": "actes", "plan_cadastraux": "plans-cadastraux"}
EVIDENCE_BUCKET = "registre-evidence"  # screenshots and traces of failed downloads, by job id
ALL_BUCKETS = (*BUCKETS.values(), EVIDENCE_BUCKET)
PDF = "application/pdf"
EVIDENCE_LINK_SECONDS = 7 * 24 * 3600

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def bucket_for(document_source: str) -> str:
    return BUCKETS.get(document_source, "index")


def _safe(value: str | None) -> str:
    return _UNSAFE.sub("_", value or "")


def object_name(job: Job, now_ms: int | None = None) -> str:
    """`<doc>-<circ>[-<cadastre>]-<ms>.pdf`, every character outside [A-Za-z0-9_-] made `_`."""
    ms = now_ms if now_ms is not None else int(time.time() * 1000)
    parts = [_safe(job.document_number), _safe(job.circonscription)]
    if job.document_source != "acte":
        parts.append(_safe(job.cadastre))
    return "-".join([*parts, str(ms)]) + ".pdf"


def parse_supabase_path(path: str, document_source: str) -> tuple[str, str]:
    """(bucket, object name) from any historical `supabase_path` form (DOMAIN.md §1.5):
    a public or signed URL, `bucket/file.pdf`, or a bare `file.pdf`."""
    path = path.strip()
    if path.startswith(("http://", "https://")):
        url_path = unquote(urlparse(path).path)
        marker = "/storage/v1/object/"
        if marker not in url_path:
            raise ValueError(f"not a Supabase Storage URL: {path!r}")
        path = url_path.split(marker, 1)[1]
        for prefix in ("public/", "sign/", "authenticated/"):
            path = path.removeprefix(prefix)
    path = path.lstrip("/")
    head, _, rest = path.partition("/")
    if rest and head in ALL_BUCKETS:
        return head, rest
    if not path:
        raise ValueError("empty supabase_path")
    return bucket_for(document_source), path


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
