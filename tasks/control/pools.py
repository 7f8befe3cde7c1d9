"""The Prefect names the system uses: work pools, their queues, and the deployments of
prefect.yaml (a test checks the two agree)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.coordination.capacity.budget import WorkerKind
from tasks.queue.jobs import Stage

REGISTRE_POOL = "registre"
OCR_POOL = "ocr"
CONTROL_POOL = "control"  # the rebalance's own pool: in a full OCR pool it starved
POOL_QUEUES = {REGISTRE_POOL: ("default",), OCR_POOL: ("index", "acte"), CONTROL_POOL: ("default",)}


@dataclass(frozen=True)
class Deployment:
    flow: str  # the flow's name, also the prefix of its runs' lease owners
    name: str
    pool: str
    queue: str

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"


@dataclass(frozen=True)
class DocumentDeployment(Deployment):
    """A deployment whose runs each take one document of a stage (and sources)."""

    stage: Stage
    sources: tuple[str, ...] | None  # None: every source
    kind: WorkerKind  # what a run costs (tasks/coordination/capacity/budget.py)


REGISTRE = DocumentDeployment(
    "registre", "registre", REGISTRE_POOL, "default", Stage.REGISTRE, None, WorkerKind.REGISTRE
)
OCR_INDEX = DocumentDeployment(
    "ocr-index", "ocr-index", OCR_POOL, "index", Stage.OCR, ("index",), WorkerKind.INDEX_OCR
)
OCR_ACTE = DocumentDeployment(
    "ocr-acte", "ocr-acte", OCR_POOL, "acte", Stage.OCR, ("acte",), WorkerKind.ACTE_OCR
)
REBALANCE = Deployment("rebalance", "rebalance", CONTROL_POOL, "default")

DOCUMENT_DEPLOYMENTS = (REGISTRE, OCR_INDEX, OCR_ACTE)
DEPLOYMENTS = (*DOCUMENT_DEPLOYMENTS, REBALANCE)
BY_FLOW = {d.flow: d for d in DOCUMENT_DEPLOYMENTS}


def run_owner(flow_name: str, run_id: object) -> str:
    """A run's lease owner, on its row and on its capacity reservation."""
    return f"{flow_name}:{run_id}"


def owner_run(owner: str) -> tuple[DocumentDeployment, str] | None:
    """The deployment and flow-run id behind a lease owner; None for runs made by hand."""
    flow_name, _, run_id = owner.partition(":")
    deployment = BY_FLOW.get(flow_name)
    if deployment is None or len(run_id) != 36 or run_id.count("-") != 4:
        return None
    return deployment, run_id
