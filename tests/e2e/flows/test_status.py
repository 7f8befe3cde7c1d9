"""`registre status` against a real Prefect server: the limits in force, and a held row's owner
run found by its id with its state."""

from __future__ import annotations

import pytest
from rich.console import Console

from deployments.status import Sources, snapshot
from deployments.status_view import render
from tasks.control.allocation import Split
from tasks.control.orchestration import Orchestrator
from tasks.control.planning import Limits
from tasks.control.pools import REGISTRE, run_owner
from tasks.queue.jobs import Claimable, Stage
from tasks.queue.table import Queue
from tasks.settings import load_settings

from .test_orchestration import INDEX, index_columns

pytestmark = pytest.mark.slow


def test_status_shows_prefects_limits_and_the_state_of_a_held_rows_run(system):
    job_id = system.pipeline.insert("index", **index_columns())
    with system.client() as client:
        orchestrator = Orchestrator(client)
        orchestrator.apply_limits(Limits(2, 3, Split(1, 2)))
        # no host runs in this test: the run stays scheduled
        run = orchestrator.create_run(REGISTRE, Claimable("prod", job_id, "index", INDEX.lot, "1"))
    owner = run_owner(REGISTRE.flow, run.id)
    assert Queue(load_settings()).claim(Stage.REGISTRE, 1, owner, env="prod", job_id=job_id)
    system.pipeline.project.sql(
        "UPDATE extraction_queue SET processing_started_at = now() - interval '30 minutes'"
        " WHERE id = %s",
        (job_id,),
    )

    with Sources.open(load_settings()) as src:
        found = snapshot(src)

    assert found["limits"]["prefect"] == {"registre": 2, "ocr": 3, "index": 1, "acte": 2}
    [held] = found["held"]["environments"]["prod"]
    assert (held["id"], held["owner"]) == (job_id, owner)
    assert held["run"]["id"] == str(run.id) and held["run"]["name"] == run.name
    assert held["run"]["state"] in ("Scheduled", "Late")
    assert found["held"]["prefect"] is None
    console = Console(record=True, width=250)
    console.print(render(found))
    screen = console.export_text()
    assert owner in screen and run.name in screen and held["run"]["state"] in screen
