"""The Prefect UI as an operator uses it. The deployed system (`registre deploy`, one
`registre worker` host) runs an index, an acte and a number the registry does not know on the
stand-ins; then headless Chromium opens the UI the test's Prefect server serves and finds, by
clicking and typing: each document's runs by its number typed with its spaces, their parameters
and artifacts (index rows, progress, the failed download's evidence), a run that had nothing to
do under its own state name, the rebalance deployment and its runs, the pools and their limits.
Screenshots of every step are left in the test's tmp dir."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL

from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS
from tasks.control.orchestration import Orchestrator
from tasks.control.pools import OCR_POOL, REBALANCE, REGISTRE, REGISTRE_POOL
from tasks.queue.jobs import Claimable
from tasks.queue.statuses import SEED
from tests.e2e.flows.prefect_ui import PrefectUI, check_ui_served, prefect_ui

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[0]  # lot "2 274 178"
ACTE = next(a for a in ACTES if not a.paper_only)  # numéro "10 687 352"
MISSING = "9 999 999"  # no such lot: the registry answers "document inexistant"
# 16 vCPU / 32 GB less 20 %: one registre run beside the OCR minimums, two OCR runs
ONE_SLOT = {"SERVER_MAX_CPU": "16", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "1",
            "OCR_WORKER_POOL_SIZE": "2"}  # fmt: skip
FINAL = (SEED.done, SEED.error)


def index_request(number: str = INDEX.lot) -> dict[str, Any]:
    return {"document_number": number, "circonscription_fonciere": INDEX.circonscription,
            "cadastre": INDEX.cadastre, "designation_secondaire": INDEX.designation}  # fmt: skip


def acte_request() -> dict[str, Any]:
    return {"document_number": ACTE.numero, "circonscription_fonciere": ACTE.circonscription,
            "acte_type": ACTE.type_document}  # fmt: skip


def secrets(system) -> dict[str, str]:
    return {
        "prod service key": system.pipeline.project.service_key,
        "dev service key": system.dev.service_key,
        "Gemini key": os.environ["GEMINI_API_KEY"],
    }


@pytest.mark.timeout(1200)
def test_an_operator_finds_documents_artifacts_rebalance_and_pools_in_the_prefect_ui(
    system, tmp_path
):
    pipeline = system.pipeline
    api = PREFECT_API_URL.value()
    base_url = api.removesuffix("/api")
    check_ui_served(base_url, api)  # before minutes of set-up

    index_id = pipeline.insert("index", **index_request())
    acte_id = pipeline.insert("acte", **acte_request())
    missing_id = pipeline.insert("index", **index_request(MISSING))
    began = datetime.now(UTC)
    system.start_host("ui", **ONE_SLOT)
    system.wait(lambda: all(pipeline.row(j)["status_id"] in FINAL
                            for j in (index_id, acte_id, missing_id)),
                600, "the three documents in a final status")  # fmt: skip
    assert [pipeline.row(j)["status_id"] for j in (index_id, acte_id, missing_id)] == [
        SEED.done, SEED.done, SEED.error]  # fmt: skip
    index_row = pipeline.row(index_id)

    # a run for a document already done, as a dispatch racing another would make: nothing to do
    with system.client() as client:
        again = Claimable("prod", index_id, "index", INDEX.lot, "after-it-was-done")
        skipped = Orchestrator(client).create_run(REGISTRE, again)
    system.wait(lambda: (s := system.runs()) and any(r.id == skipped.id and r.state.is_final()
                                                     for r in s),
                120, "the run with nothing to do to end")  # fmt: skip
    # the documents may all be done before the first scheduled rebalance has run (warm runs
    # start in about a second)
    reported = system.wait(
        lambda: reported_run(system, began), 120, "a completed rebalance's report"
    )
    with system.client() as client:
        skipped = client.read_flow_run(skipped.id)
        limits = Orchestrator(client).limits()
    assert skipped.state.name == "Skipped", skipped.state
    assert "is in status" in skipped.state.message, skipped.state.message  # done, not "held"

    index_runs, acte_runs, missing_runs = (runs_of(system, j) for j in (index_id, acte_id,
                                                                        missing_id))  # fmt: skip
    assert {r.name for r in index_runs} == {f"{stage}-prod-index-{INDEX.lot}"
                                            for stage in ("registre", "ocr")}  # fmt: skip
    assert {r.name for r in missing_runs} == {f"registre-prod-index-{MISSING}"}

    with prefect_ui(base_url, tmp_path / "ui") as ui:
        ui.home()
        ui.shot("home")
        # each document by its number as typed, with its spaces: every run of every stage
        ui.search_runs(INDEX.lot, [r.name for r in index_runs])
        ui.shot("search-index")
        index_ocr_run(ui, done(index_runs, "ocr"), index_id, index_row)

        ui.search_runs(ACTE.numero, [r.name for r in acte_runs])
        ui.shot("search-acte")
        acte_ocr_run(ui, done(acte_runs, "ocr"), acte_id)

        ui.search_runs(MISSING, [r.name for r in missing_runs])
        ui.shot("search-missing")
        failed = next(r for r in missing_runs if r.state.is_failed())
        failed_download(ui, failed, missing_id, pipeline.row(missing_id))

        nothing_to_do(ui, skipped, index_runs)
        rebalance_deployment(ui, reported, limits)
        pools(ui, limits)

    leaked = [what for what, value in secrets(system).items()
              if any(value in text for text in ui.seen)]  # fmt: skip
    assert not leaked, f"shown in the UI: {leaked}"


def reported_run(system, since: datetime) -> FlowRun | None:
    """The run of the latest `rebalance` artifact, written `since` (not an earlier test's, on
    the server they share), once it completed (a rebalance writes its report only when
    something changed)."""
    with system.client() as client:
        reports = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(
                key=ArtifactCollectionFilterKey(any_=["rebalance"])
            )
        )
        if not reports or reports[0].updated < since:
            return None
        run = client.read_flow_run(reports[0].flow_run_id)
    return run if run and run.state.is_completed() else None


def runs_of(system, job_id: str) -> list[FlowRun]:
    return [r for r in system.runs() if r.parameters.get("job_id") == job_id]


def done(runs: list[FlowRun], stage: str) -> FlowRun:
    return next(r for r in runs if r.name.startswith(f"{stage}-") and r.state.is_completed()
                and r.state.name == "Completed")  # fmt: skip


def index_ocr_run(ui: PrefectUI, run: FlowRun, job_id: str, row: dict[str, Any]) -> None:
    ui.open_run(run.id, run.name)
    expect(ui.page.get_by_text("Completed", exact=True).first).to_be_visible()
    parameters = ui.tab("Parameters")
    expect(parameters).to_contain_text('"env": "prod"')
    expect(parameters).to_contain_text(f'"job_id": "{job_id}"')
    ui.shot("index-ocr-parameters")

    artifacts = ui.tab("Artifacts")
    expect(artifacts).to_contain_text(f"index-rows-{job_id}")
    expect(artifacts).to_contain_text(f"ocr-progress-{job_id}")
    ui.shot("index-ocr-artifacts")

    ui.open_artifact(f"index-rows-{job_id}")
    first = row["structured_content"]["pages"][0]["rows"][0]
    table = ui.page.get_by_role("table")
    expect(table).to_contain_text("nature")
    expect(table).to_contain_text(first["numero"])
    expect(table).to_contain_text(first["nature"])
    ui.shot("index-rows-table")

    ui.page.go_back()
    ui.open_artifact(f"ocr-progress-{job_id}")
    expect(ui.page.get_by_text("Progress: 100%")).to_be_visible()
    ui.shot("index-ocr-progress")


def acte_ocr_run(ui: PrefectUI, run: FlowRun, job_id: str) -> None:
    ui.open_run(run.id, run.name)
    parameters = ui.tab("Parameters")
    expect(parameters).to_contain_text(f'"job_id": "{job_id}"')
    artifacts = ui.tab("Artifacts")
    expect(artifacts).to_contain_text(f"acte-{job_id}")
    ui.shot("acte-ocr-artifacts")


def failed_download(ui: PrefectUI, run: FlowRun, job_id: str, row: dict[str, Any]) -> None:
    ui.open_run(run.id, run.name)
    expect(ui.page.get_by_text("Failed", exact=True).first).to_be_visible()
    parameters = ui.tab("Parameters")
    expect(parameters).to_contain_text(f'"job_id": "{job_id}"')
    artifacts = ui.tab("Artifacts")
    expect(artifacts).to_contain_text(".png")
    ui.shot("failed-artifacts")

    ui.open_artifact(".png")
    link = ui.page.get_by_role("link", name=re.compile(r"\.png$"))
    expect(link).to_be_visible()
    ui.shot("failed-evidence-link", showing=link)
    # what the operator gets by following the link: the registry page as the run saw it
    screenshot = httpx.get(link.get_attribute("href") or "", timeout=30)
    assert screenshot.status_code == 200, screenshot.text[:300]
    assert screenshot.content.startswith(b"\x89PNG")
    assert link.inner_text() in row["error_message"]  # the row names the same evidence


def nothing_to_do(ui: PrefectUI, run: FlowRun, index_runs: list[FlowRun]) -> None:
    """The run that found its row done says so: "Skipped" and why, never "Completed"; the
    state-name filter tells real work from it."""
    skipped = [r.name for r in index_runs if r.state.name == "Skipped"]
    completed = [r.name for r in index_runs if r.state.name == "Completed"]
    ui.search_runs(INDEX.lot, [r.name for r in index_runs])
    ui.filter_state_name("Skipped")
    expect(ui.run_links()).to_have_count(len(skipped))
    ui.shot("filter-skipped")
    ui.open_run(run.id, run.name)
    expect(ui.page.get_by_text("Skipped", exact=True).first).to_be_visible()
    expect(ui.page.get_by_text("Completed", exact=True)).to_have_count(0)
    details = ui.tab("Details")
    expect(details).to_contain_text(run.state.message)
    ui.shot("skipped-run")

    ui.search_runs(INDEX.lot, [r.name for r in index_runs])
    ui.filter_state_name("Completed")  # real work only: the skipped run is not among it
    expect(ui.run_links()).to_have_count(len(completed))
    expect(ui.page.get_by_text("Skipped", exact=True)).to_have_count(0)
    ui.shot("filter-completed")


def rebalance_deployment(ui: PrefectUI, run: FlowRun, limits: dict[str, int | None]) -> None:
    """The rebalance deployment, its schedule and its recent runs; one run's report."""
    ui.go("Deployments")
    ui.shot("deployments")
    ui.page.get_by_role("link", name=REBALANCE.name, exact=True).first.click()
    expect(ui.page.get_by_text("Every 30 seconds").first).to_be_visible()
    runs = ui.tab("Runs")
    # ticks missed while no control worker ran end Cancelled (CANCEL_NEW) and may fill the
    # first pages
    ui.filter_state_name("Completed")
    expect(runs.get_by_text("Completed", exact=True).first).to_be_visible()
    ui.shot("rebalance-runs")

    ui.search_runs(run.name, [run.name])  # the deployment's own search box lost its tab here
    ui.open_run(run.id, run.name)
    ui.tab("Artifacts")
    ui.open_artifact("limits, allocation, queue")
    report = ui.page.get_by_role("table").filter(has_text="pool registre")
    for label, name in (("pool registre", "registre"), ("pool ocr", "ocr"),
                        ("queue ocr/index", "index"), ("queue ocr/acte", "acte")):  # fmt: skip
        expect(ui.cell(report, label, "value")).to_have_text(str(limits[name]))
    ui.shot("rebalance-report")


def pools(ui: PrefectUI, limits: dict[str, int | None]) -> None:
    """The pools with their limits, and the OCR queues with the index/acte split."""
    ui.go("Work Pools")
    for pool in (REGISTRE_POOL, OCR_POOL):
        card = (
            ui.page.locator("div")
            .filter(has=ui.page.get_by_role("link", name=pool, exact=True))
            .filter(has_text="Concurrency Limit")
            .last
        )
        expect(card).to_contain_text(re.compile(rf"Concurrency Limit\s*{limits[pool]}(?!\d)"))
    ui.shot("work-pools")

    ui.page.get_by_role("link", name=OCR_POOL, exact=True).first.click()
    queues = ui.tab("Work Queues").get_by_role("table")
    for queue in ("index", "acte"):
        expect(ui.cell(queues, queue, "Concurrency Limit")).to_have_text(str(limits[queue]))
    ui.shot("ocr-pool-queues")
