"""Where a document's PDF lives in Supabase Storage: its bucket, its object name, and the
`supabase_path` column's historical forms read back."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote, urlparse

from tasks.queue.jobs import Job

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
