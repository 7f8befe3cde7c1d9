"""The control plane end to end: `registre deploy`, `registre worker` hosts with real Prefect
process workers, the rebalance deployment, against the stand-ins and the test's Prefect server."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling, Scheduled

from sandbox.registry import control
from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS
from tasks.control.dispatch import CANCELLED_MESSAGE
from tasks.queue.statuses import SEED
from tasks.services import capacity_manager, redis_client
from tasks.settings import load_settings

from .control_plane import (
    ACTE,
    INDEX,
    ONE_SLOT,
    acte_columns,
    capacity_leases,
    flow_run_pid,
    index_columns,
    limits_in_prefect,
    plan_columns,
    run_of,
    state_of,
)

pytestmark = pytest.mark.slow


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


def test_a_stopped_host_lets_its_download_finish_and_leaves_nothing_running(system):
    pipeline = system.pipeline
    control.set_faults(pipeline.registry, latency_s=1.0)
    job_id = pipeline.insert("plan_cadastraux", **plan_columns())
    system.start_host("h1", **ONE_SLOT)
    run = system.wait(lambda: (r := run_of(system, job_id)) and r.state.is_running() and r,
                      120, "the registre run to start")  # fmt: skip
    system.wait(lambda: control.counters(pipeline.registry)["pages"] >= 2, 60, "the download")

    assert system.stop_host("h1") == 0  # SIGTERM: no new runs, the one in progress finishes

    row, state = pipeline.row(job_id), state_of(system, run.id)
    assert row["status_id"] == SEED.done, (row["error_message"], state.name, state.message)
    assert state.is_completed()
    documents = [r for r in system.runs() if "job_id" in r.parameters]  # not the rebalance's
    assert not [r.name for r in documents if r.state.type in (StateType.RUNNING,
                                                               StateType.PENDING)]  # fmt: skip
    assert not capacity_leases("")


def test_the_rebalance_follows_the_queue_and_reports_it(system):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.rebalance import rebalance
    from tasks.coordination.capacity.budget import Budget

    pipeline = system.pipeline
    manager = capacity_manager(load_settings(), redis_client(load_settings()))
    manager.register_host("big", Budget(40, 40), {"registre": 0, "ocr": 6})
    for _ in range(10):
        pipeline.insert("acte", status_id=SEED.ready_for_ocr, supabase_path="actes/x.pdf",
                        **acte_columns())  # fmt: skip

    result = rebalance()
    assert result["limits"] == {"registre": 0, "ocr": 6, "index": 1, "acte": 5}
    assert limits_in_prefect(system) == result["limits"]

    for _ in range(20):
        pipeline.insert("index", status_id=SEED.ready_for_ocr, supabase_path="index/x.pdf",
                        **index_columns())  # fmt: skip
    result = rebalance()
    assert result["limits"] == {"registre": 0, "ocr": 6, "index": 4, "acte": 2}
    assert limits_in_prefect(system) == result["limits"]
    with system.client() as client:
        artifact = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["rebalance"])),
            sort="CREATED_DESC", limit=1)[0]  # fmt: skip
    assert "| big | 40 | 40 | 0 | 6 |" in artifact.data
    assert "queue ocr/index | 4 | from 1" in artifact.data
    # a run was created for each waiting document the slots allow, named after it
    names = {r.name for r in system.runs("ocr")}
    assert f"ocr-prod-index-{INDEX.lot}" in names and f"ocr-prod-acte-{ACTE.numero}" in names
    manager.unregister_host("big")
    assert rebalance()["limits"] == {"registre": 0, "ocr": 0, "index": 0, "acte": 0}
    manager.client.close()


def insert(project, source: str, **columns) -> str:
    names = ", ".join(["document_source", *columns])
    marks = ", ".join(["%s"] * (len(columns) + 1))
    sql = f"INSERT INTO extraction_queue ({names}) VALUES ({marks}) RETURNING id"
    return str(project.sql(sql, (source, *columns.values()))[0][0])


class LimitSampler(threading.Thread):
    """Samples, every second through the Prefect API, the running runs of each deployment
    against the limits in force."""

    def __init__(self, system) -> None:
        super().__init__(daemon=True)
        self.system = system
        self.api = PREFECT_API_URL.value()  # settings contexts do not cross into threads
        self.stop = threading.Event()
        self.samples: list[tuple[dict[str, int], dict[str, int | None]]] = []

    def run(self) -> None:
        from tasks.control.orchestration import Orchestrator

        settings = temporary_settings(updates={PREFECT_API_URL: self.api})
        with settings, self.system.client() as client:
            orchestrator = Orchestrator(client)
            while not self.stop.wait(1):
                runs = orchestrator.runs([StateType.PENDING, StateType.RUNNING])
                counts = {"registre": 0, "ocr-index": 0, "ocr-acte": 0}
                for run in runs:
                    counts[orchestrator.deployment_of(run).flow] += 1
                self.samples.append((counts, orchestrator.limits()))

    def violations(self) -> list[tuple[dict[str, int], dict[str, int | None]]]:
        return [(c, lim) for c, lim in self.samples
                if c["registre"] > lim["registre"] or c["ocr-index"] > lim["index"]
                or c["ocr-acte"] > lim["acte"]
                or c["ocr-index"] + c["ocr-acte"] > lim["ocr"]]  # fmt: skip


@pytest.mark.timeout(1500)
def test_thirty_mixed_documents_in_two_environments_reach_their_final_status(system):
    prod, dev = system.pipeline.project, system.dev
    docs: dict[str, tuple[object, str, str, int]] = {}  # job id -> (project, env, source, final)
    actes = [a for a in ACTES if not a.paper_only]
    paper = next(a for a in ACTES if a.paper_only)
    for env, project, index, acte, plans in (
        ("prod", prod, INDEX_DOCUMENTS[:6], actes[:5], PLANS[:2]),
        ("dev", dev, INDEX_DOCUMENTS[5:], actes[5:10], PLANS[2:]),
    ):
        for doc in index:
            docs[insert(project, "index", **index_columns(doc))] = (project, env, "index",
                                                                    SEED.done)  # fmt: skip
        for a in acte:
            docs[insert(project, "acte", **acte_columns(a))] = (project, env, "acte", SEED.done)
        for plan in plans:
            docs[insert(project, "plan_cadastraux", **plan_columns(plan))] = (
                project, env, "plan_cadastraux", SEED.done)  # fmt: skip
        missing = {**index_columns(), "document_number": "9 999 999"}
        docs[insert(project, "index", **missing)] = (project, env, "index", SEED.error)
    no_type = {**acte_columns(), "acte_type": None}
    docs[insert(prod, "acte", **no_type)] = (prod, "prod", "acte", SEED.error)
    docs[insert(dev, "acte", **acte_columns(paper))] = (dev, "dev", "acte", SEED.error)
    assert len(docs) == 30

    sampler = LimitSampler(system)
    sampler.start()
    # 12 vCPU / 32 GB less 20 %: two registre runs beside the OCR minimums, two OCR runs
    system.start_host("h1", SERVER_MAX_CPU="12", SERVER_MAX_RAM="32", WORKER_COUNT="2",
                      OCR_WORKER_POOL_SIZE="2")  # fmt: skip

    def row(job_id):
        project = docs[job_id][0]
        return project.sql("SELECT to_jsonb(q) FROM extraction_queue q WHERE id = %s",
                           (job_id,))[0][0]  # fmt: skip

    def finished():
        return all(row(j)["status_id"] in (SEED.done, SEED.error) for j in docs)

    try:
        system.wait(finished, 1200, "every document in a final status")
    finally:
        sampler.stop.set()
        sampler.join()
    for job_id, (_, _, source, final) in docs.items():
        r = row(job_id)
        assert r["status_id"] == final, (source, r["document_number"], r["error_message"],
                                         r["ocr_error"])  # fmt: skip
        if final == SEED.error:
            assert r["error_message"] or r["ocr_error"]

    assert len(sampler.samples) > 60 and not sampler.violations(), sampler.violations()[:5]
    assert max(c["registre"] for c, _ in sampler.samples) == 2  # both slots were used

    with system.client() as client:
        rebalance = client.read_deployment_by_name("rebalance/rebalance").id
    runs = system.runs()
    for run in runs:
        if run.deployment_id == rebalance:
            continue
        job_id = run.parameters["job_id"]
        _, env, source, _ = docs[job_id]
        stage = "registre" if run.name.startswith("registre") else "ocr"
        number = " ".join(row(job_id)["document_number"].split())
        assert run.parameters == {"env": env, "job_id": job_id}
        assert run.name == f"{stage}-{env}-{source}-{number}"
    done_rebalances = [r for r in runs if r.deployment_id == rebalance and r.state.is_completed()]
    assert done_rebalances, "no scheduled rebalance run completed"
