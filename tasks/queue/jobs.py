"""The records the queue hands out: a claimed row as a Job (with its checked Request), and the
rows the control plane and the operators' commands look at."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from tasks.failures import DocumentFailed
from tasks.request import OCR_SOURCES, SOURCES, InvalidRequest, Request, check_request, text

__all__ = ["Claimable", "Held", "InvalidJob", "Job", "Retried", "Stage", "parse_job"]


class Stage(StrEnum):
    REGISTRE = "registre"
    OCR = "ocr"


# The column that counts a stage's attempts. `attemtps` is the table's own spelling, inherited from
# the system we replace (DOMAIN.md): renaming it here would read a column that does not exist.
ATTEMPTS_COLUMN = {Stage.REGISTRE: "attemtps", Stage.OCR: "ocr_attempts"}


class InvalidJob(DocumentFailed):
    """The row cannot be processed as it stands; the message says what to fix."""

    what = "invalid request"
    permanent = True


@dataclass(frozen=True)
class Job:
    """A claimed `extraction_queue` row, tagged with its environment and its lease."""

    env: str
    id: str
    stage: Stage
    owner: str
    request: Request  # what the row asks for, checked
    supabase_path: str | None
    created_at: str
    attempts: int  # this stage's failed attempts so far (the retry backoff grows with them)
    registry_cost_usd: float  # the registry's fees recorded by earlier downloads
    gemini_usage: dict[str, Any] | None = field(repr=False)  # tokens recorded by earlier OCR

    @property
    def document_source(self) -> str:
        return self.request.document_source

    @property
    def document_number(self) -> str:
        return self.request.document_number

    @property
    def circonscription(self) -> str:
        return self.request.circonscription

    @property
    def cadastre(self) -> str | None:
        return self.request.cadastre

    @property
    def label(self) -> str:
        """A short name for logs and flow-run names: env, source, number, id prefix."""
        return f"{self.env}-{self.document_source}-{self.document_number}-{self.id[:8]}"


class Claimable(NamedTuple):
    """A row a claim would take now; `version` changes with every write to the row."""

    env: str
    id: str
    source: str
    number: str
    version: str


class Held(NamedTuple):
    env: str
    id: str
    owner: str
    stage: Stage


class Retried(NamedTuple):
    """A failed row `Queue.retry` put back (or, in a dry run, would put back)."""

    env: str
    id: str
    source: str
    number: str
    stage: Stage  # the stage that failed, which the row goes back to
    status: int  # the row's status now (in a dry run, the one it would get)
    message: str  # the error it had
    failed_at: str


def parse_job(env: str, row: dict[str, Any], stage: Stage, owner: str) -> Job:
    """Check that a claimed row can be worked on; raise InvalidJob with a person-readable reason."""
    try:
        request = check_request(row, SOURCES if stage is Stage.REGISTRE else OCR_SOURCES)
    except InvalidRequest as exc:
        raise InvalidJob(str(exc)) from None
    supabase_path = text(row, "supabase_path")
    if stage is Stage.OCR and not supabase_path:
        raise InvalidJob("supabase_path is empty: the PDF was never uploaded, nothing to read")
    return Job(
        env=env,
        id=str(row["id"]),
        stage=stage,
        owner=owner,
        request=request,
        supabase_path=supabase_path,
        created_at=str(row.get("created_at")),
        attempts=int(row.get(ATTEMPTS_COLUMN[stage]) or 0),
        registry_cost_usd=float(row.get("registry_cost_usd") or 0),
        gemini_usage=row.get("gemini_usage"),
    )
