"""Supabase Storage, where a document's PDF lives: its bucket, its object name, the
`supabase_path` column's historical forms read back, and the buckets of one environment."""

from __future__ import annotations

import re
import time
from typing import ClassVar
from urllib.parse import unquote, urlparse

from supabase import Client

from tasks.queue.client import with_network_retries
from tasks.queue.jobs import Job

__all__ = [
    "ALL_BUCKETS",
    "BUCKETS",
    "EVIDENCE_BUCKET",
    "PDF",
    "Storage",
    "bucket_for",
    "object_name",
    "parse_supabase_path",
]

# document_source -> bucket; anything else goes to `index`, as the seed system did (DOMAIN.md §1.4).
BUCKETS = {"index": "index", "acte": "actes", "plan_cadastraux": "plans-cadastraux"}
EVIDENCE_BUCKET = "registre-evidence"  # screenshots and traces of failed downloads, by job id
ALL_BUCKETS = (*BUCKETS.values(), EVIDENCE_BUCKET)
PDF = "application/pdf"

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
    """The document buckets of one environment (`Queue.storage(env)`), every call under the
    queue's retry policy."""

    _ready: ClassVar[set[str]] = set()  # projects whose buckets this process has checked

    def __init__(self, client: Client) -> None:
        self._client = client

    def ensure_buckets(self) -> None:
        """Create the private buckets that are missing (a new environment has none); checked
        once per project and process."""
        project = str(self._client.supabase_url)
        if project in self._ready:
            return
        storage = self._client.storage
        existing = {b.id for b in with_network_retries(storage.list_buckets, "buckets")}
        for bucket in ALL_BUCKETS:
            if bucket not in existing:
                # a second create of a bucket the first one made fails: made once
                with_network_retries(
                    lambda b=bucket: storage.create_bucket(b, options={"public": False}),
                    f"create bucket {bucket}",
                    repeatable=False,
                )
        self._ready.add(project)

    def upload_pdf(self, job: Job, pdf: bytes) -> str:
        """Upload the document's PDF; returns the `supabase_path` to store (`bucket/file`)."""
        bucket = bucket_for(job.document_source)
        name = object_name(job)
        return self.upload(bucket, name, pdf, PDF)

    def upload(self, bucket: str, name: str, data: bytes, content_type: str) -> str:
        files = self._client.storage.from_(bucket)
        options = {"content-type": content_type, "upsert": "true"}
        with_network_retries(lambda: files.upload(name, data, options), f"upload {bucket}/{name}")
        return f"{bucket}/{name}"

    def signed_url(self, stored_path: str, expires_in_seconds: int) -> str:
        bucket, name = stored_path.split("/", 1)
        files = self._client.storage.from_(bucket)
        signed = with_network_retries(
            lambda: files.create_signed_url(name, expires_in_seconds), f"sign {stored_path}"
        )
        return signed["signedURL"]

    def download(self, supabase_path: str, document_source: str) -> bytes:
        bucket, name = parse_supabase_path(supabase_path, document_source)
        files = self._client.storage.from_(bucket)
        return with_network_retries(lambda: files.download(name), f"download {bucket}/{name}")

    def exists(self, supabase_path: str, document_source: str) -> bool:
        """Whether the object a `supabase_path` names is still in its bucket."""
        bucket, name = parse_supabase_path(supabase_path, document_source)
        files = self._client.storage.from_(bucket)
        return with_network_retries(lambda: files.exists(name), f"look for {bucket}/{name}")
