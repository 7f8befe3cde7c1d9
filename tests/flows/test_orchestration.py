"""The control plane end to end: `registre deploy`, `registre worker` hosts with real Prefect
process workers, the rebalance deployment, against the stand-ins and the test's Prefect server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling, Scheduled

from sandbox.registry import control
from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS
from tasks.capacity import CapacityManager
from tasks.dispatch import CANCELLED_MESSAGE
from tasks.settings import get_settings
from tasks.statuses import SEED

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[0]
ACTE = next(a for a in ACTES if not a.paper_only)
PLAN = PLANS[0]
# 16 vCPU / 32 GB less 20 %: one registre run beside the OCR minimums, two OCR runs
ONE_SLOT = {"SERVER_MAX_CPU": "16", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "1",
            "OCR_WORKER_POOL_SIZE": "2"}  # fmt: skip


def index_columns(doc=INDEX):
    return {"document_number": doc.lot, "circonscription_fonciere": doc.circonscription,
            "cadastre": doc.cadastre}  # fmt: skip


def acte_columns(acte=ACTE):
    return {"document_number": acte.numero, "circonscription_fonciere": acte.circonscription,
            "acte_type": acte.type_document}  # fmt: skip


def plan_columns(plan=PLAN):
    return {"document_number": plan.lot, "circonscription_fonciere": plan.circonscription,
            "cadastre": plan.cadastre}  # fmt: skip


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
    manager = CapacityManager.from_settings(get_settings())
    try:
        return [w for w in manager.status().workers if owner_part in str(w["workerId"])]
    finally:
        manager.client.close()


def test_a_run_killed_mid_download_is_taken_back_at_once_and_done_exactly_once(system):
    pipeline = system.pipeline
    control.set_faults(pipeline.registry, latency_s=1.5)  # a download of ~15 s
    job_id = pipeline.insert("index", **index_columns())
    system.start_host("h1", **ONE_SLOT)

    run = system.wait(lambda: (r := run_of(system, job_id)) and r.state.is_running() and r,
                      120, "the registre run to start")  # fmt: skip
    system.wait(lambda: control.counters(pipeline.registry)["pages"] >= 3, 60, "the download")
    assert control.counters(pipeline.registry)["downloads"] == 0
    pid = system.wait(lambda: flow_run_pid(str(run.id)), 10, "the run's process")
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    system.wait(lambda: state_of(system, run.id).type is StateType.CRASHED, 60, "Crashed")
    row = system.wait(lambda: (r := pipeline.row(job_id))["attemtps"] == 1 and r, 60,
                      "the row taken back")  # fmt: skip
    taken_back_s = time.monotonic() - killed_at
    assert taken_back_s < 60, taken_back_s  # the lease (60 s here) had not expired
    assert not capacity_leases(str(run.id)), "the dead run's capacity was not given back"
    assert "crashed" in row["error_message"]

    control.set_faults(pipeline.registry, latency_s=0)
    system.wait(lambda: pipeline.row(job_id)["status_id"] == SEED.done, 240, "OCR done")
    assert control.counters(pipeline.registry)["downloads"] == 1
    assert pipeline.row(job_id)["attemtps"] == 1


def test_a_cancel_sticks_and_a_retry_processes_the_same_document_again(system):
    pipeline = system.pipeline
    control.set_faults(pipeline.registry, latency_s=1.5)
    job_id = pipeline.insert("index", **index_columns())
    other = pipeline.insert("acte", **acte_columns())
    system.start_host("h1", **ONE_SLOT)

    run = system.wait(lambda: (r := run_of(system, job_id)) and r.state.is_running() and r,
                      120, "the registre run to start")  # fmt: skip
    with system.client() as client:
        client.set_flow_run_state(run.id, Cancelling(message="from the UI"))
    system.wait(lambda: state_of(system, run.id).is_cancelled(), 90, "Cancelled")
    row = system.wait(lambda: (r := pipeline.row(job_id))["status_id"] == SEED.error and r, 60,
                      "the row in error")  # fmt: skip
    assert row["error_message"] == CANCELLED_MESSAGE
    assert not capacity_leases(str(run.id))

    control.set_faults(pipeline.registry, latency_s=0)
    system.wait(lambda: pipeline.row(other)["status_id"] == SEED.done, 240, "the other document")
    assert pipeline.row(job_id)["status_id"] == SEED.error  # it stuck: no new run took it
    assert [r.id for r in system.runs("registre") if r.parameters["job_id"] == job_id] == [run.id]

    with system.client() as client:  # what the UI's Retry button sends
        retry = Scheduled(name="AwaitingRetry", message="Retry from the UI")
        assert client.set_flow_run_state(run.id, retry).status.value == "ACCEPT"
    system.wait(lambda: pipeline.row(job_id)["status_id"] == SEED.done, 240, "the retried doc")
    with system.client() as client:
        retried = client.read_flow_run(run.id)
    assert retried.state.is_completed() and retried.run_count == 2
