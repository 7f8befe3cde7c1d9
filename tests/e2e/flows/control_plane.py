"""What the control-plane tests share: the catalogue's documents as queue columns, a host of one
registre slot, and the reads of runs, leases and limits they assert on."""

from __future__ import annotations

from pathlib import Path

from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS
from tasks.services import capacity_manager, redis_client
from tasks.settings import load_settings

INDEX = INDEX_DOCUMENTS[0]
ACTE = next(a for a in ACTES if not a.paper_only)
PLAN = PLANS[0]
# 16 vCPU / 32 GB less 20 %: one registre run beside the OCR minimums, two OCR runs
ONE_SLOT = {"SERVER_MAX_CPU": "16", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "1",
            "OCR_WORKER_POOL_SIZE": "2"}  # fmt: skip


def index_columns(doc=INDEX):
    return {"document_number": doc.lot, "circonscription_fonciere": doc.circonscription,
            "cadastre": doc.cadastre, "designation_secondaire": doc.designation}  # fmt: skip


def acte_columns(acte=ACTE):
    return {"document_number": acte.numero, "circonscription_fonciere": acte.circonscription,
            "acte_type": acte.type_document}  # fmt: skip


def plan_columns(plan=PLAN):
    return {"document_number": plan.lot, "circonscription_fonciere": plan.circonscription,
            "cadastre": plan.cadastre, "designation_secondaire": plan.designation}  # fmt: skip


def flow_run_pid(run_id: str) -> int | None:
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def run_of(system, job_id: str, flow: str = "registre"):
    for run in system.runs():
        if run.parameters.get("job_id") == job_id and run.name.startswith(flow):
            return run
    return None


def state_of(system, run_id):
    with system.client() as client:
        return client.read_flow_run(run_id).state


def capacity_leases(owner_part: str) -> list[dict]:
    manager = capacity_manager(load_settings(), redis_client(load_settings()))
    try:
        return [w for w in manager.status().workers if owner_part in str(w["workerId"])]
    finally:
        manager.client.close()


def limits_in_prefect(system) -> dict[str, int | None]:
    from tasks.control.orchestration import Orchestrator

    with system.client() as client:
        return Orchestrator(client).limits()
