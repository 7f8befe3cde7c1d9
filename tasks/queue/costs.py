"""Money in the queue: a day's spending per environment, and the fresh download a request can
reuse instead of paying the registry twice. Both are SQL functions of the costs migration."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tasks.queue.client import QueueError
from tasks.queue.jobs import Job
from tasks.queue.table import Queue
from tasks.request import DEFAULT_CIRCONSCRIPTION
from tasks.settings import Settings

__all__ = ["DailyCost", "ModelTokens", "Reuse", "daily_costs", "fresh_download", "reuse_hours"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ModelTokens:
    input_tokens: int
    output_tokens: int  # thinking tokens included, as Google bills them
    cost_usd: float


@dataclass(frozen=True, kw_only=True)
class DailyCost:
    """One environment's spending on one UTC day: documents downloaded that day (the registry's
    fees) and documents whose Gemini spending was last written that day."""

    day: date
    documents: int
    downloads: int  # fetched from the registry
    reused: int  # served from an earlier download, at no registry fee
    registry_usd: float
    gemini_usd: float
    tokens: dict[str, ModelTokens] = field(default_factory=dict)  # per Gemini model

    @property
    def total_usd(self) -> float:
        return self.registry_usd + self.gemini_usd

    @classmethod
    def from_row(cls, day: date, row: dict[str, Any]) -> DailyCost:
        usage = row.get("gemini_usage") or {}
        return cls(
            day=day,
            documents=int(row["documents"]),
            downloads=int(row["downloads"]),
            reused=int(row["reused"]),
            registry_usd=float(row["registry_usd"]),
            gemini_usd=float(row["gemini_usd"]),
            tokens={
                model: ModelTokens(
                    input_tokens=int(spent["input_tokens"]),
                    output_tokens=int(spent["output_tokens"]),
                    cost_usd=float(spent["cost_usd"]),
                )
                for model, spent in sorted(usage.items())
            },
        )


def daily_costs(queue: Queue, day: date) -> dict[str, DailyCost]:
    """`day`'s spending in every environment, in polling order; an environment whose Supabase
    does not answer is left out (and logged)."""
    costs = {}
    for env in queue.environments:
        try:
            rows = queue.rpc(env, "registre_costs_v1", {"p_day": day.isoformat()})
        except QueueError as exc:
            logger.warning("%s: no costs for %s: %s", env, day, exc.reason)
            continue
        costs[env] = DailyCost.from_row(day, rows[0])
    return costs


@dataclass(frozen=True)
class Reuse:
    """An earlier row's stored PDF, downloaded recently enough to stand for a new download."""

    row_id: str
    supabase_path: str
    downloaded_at: str


def reuse_hours(settings: Settings, document_source: str) -> float:
    """How old a download a request for this source may reuse (0: download anyway)."""
    if document_source == "index" and not settings.reuse_index_downloads:
        return 0
    return settings.reuse_download_hours


def fresh_download(queue: Queue, job: Job, max_age_hours: float) -> Reuse | None:
    """The latest download of the same document in the job's environment within
    `max_age_hours` whose PDF is still in Storage, or None."""
    if max_age_hours <= 0:
        return None
    params = {
        "p_id": job.id,
        "p_source": job.document_source,
        "p_number": job.document_number,
        "p_circonscription": job.circonscription,
        "p_default_circonscription": DEFAULT_CIRCONSCRIPTION,
        "p_cadastre": job.cadastre,
        "p_designation": job.request.designation_secondaire,
        "p_acte_type": job.request.acte_type,
        "p_max_age_hours": max_age_hours,
        "p_error_status": queue.statuses.error,
    }
    rows = queue.rpc(job.env, "registre_fresh_download_v1", params)
    if not rows:
        return None
    earlier = Reuse(str(rows[0]["id"]), rows[0]["supabase_path"], rows[0]["downloaded_at"])
    if not queue.storage(job.env).exists(earlier.supabase_path, job.document_source):
        logger.warning("%s: the PDF of row %s (%s) is no longer in Storage; downloading again",
                       job.label, earlier.row_id, earlier.supabase_path)  # fmt: skip
        return None
    return earlier
