"""Worker recycling end to end: a `registre worker` host replaces its Prefect worker every few runs
(WORKER_RECYCLE_RUNS) while documents flow, and no run is lost, doubled, left waiting or run
beyond the limit; and deployments/prefect_worker.py's hand-over on its own, on a pool with no
server-side limit, where only the inherited runs keep the two workers within `--limit`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect import flow, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter
from prefect.client.schemas.objects import StateType

from deployments.processes import alive
from deployments.worker import flow_run_processes
from sandbox.registry.catalogue import INDEX_DOCUMENTS
from tasks.queue.statuses import SEED

pytestmark = pytest.mark.slow

WORKER_MODULE = "deployments.prefect_worker"


def environ(pid: int) -> dict[str, str]:
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class Sampler:
    """Every 0.2 s: the flow runs whose processes carry `mark` (its most at once), and the pids
    of the worker processes of deployments.prefect_worker carrying it."""

    def __init__(self, mark: tuple[str, str]) -> None:
        self.mark = mark
        self.most_runs = 0
        self.workers: set[int] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.done.wait(0.2):
            runs = set()
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                env = environ(int(entry.name))
                if env.get(self.mark[0]) != self.mark[1]:
                    continue
                if run_id := env.get("PREFECT__FLOW_RUN_ID"):
                    runs.add(run_id)  # the run's engine, its browser: one run
                elif WORKER_MODULE in cmdline(int(entry.name)):
                    self.workers.add(int(entry.name))
            self.most_runs = max(self.most_runs, len(runs))

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def index_columns(doc) -> dict[str, str]:
    return {"document_number": doc.lot, "circonscription_fonciere": doc.circonscription,
            "cadastre": doc.cadastre, "designation_secondaire": doc.designation}  # fmt: skip


def test_a_host_replaces_its_worker_every_few_runs_and_every_document_is_done_once(system):
    pipeline = system.pipeline
    documents = INDEX_DOCUMENTS[:7]
    job_ids = [pipeline.insert("index", **index_columns(doc)) for doc in documents]
    env = {"SERVER_MAX_CPU": "16", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "2",
           "WORKER_RECYCLE_RUNS": "3"}  # fmt: skip
    with Sampler(("REGISTRE_HOST_ID", "h-recycle")) as sampler:
        system.start_host("h-recycle", pool="registre", **env)
        system.wait(
            lambda: all(pipeline.row(j)["status_id"] == SEED.ready_for_ocr for j in job_ids),
            600,
            "every document downloaded",
        )
        system.wait(lambda: system.log("h-recycle").count("exited (0)") >= 2, 60,
                    "the retired workers to exit")  # fmt: skip
    assert system.stop_host("h-recycle") == 0

    runs = system.runs("registre")
    for job_id in job_ids:
        mine = [r for r in runs if r.parameters.get("job_id") == job_id]
        assert [r.state.type for r in mine] == [StateType.COMPLETED], job_id
    assert {r.state.type for r in runs} == {StateType.COMPLETED}
    log = system.log("h-recycle")
    assert log.count("replacing its Prefect worker") >= 2, log[-3000:]
    assert len(sampler.workers) >= 3, sampler.workers  # the first and two replacements
    assert sampler.most_runs <= 2
    assert not [p for p in sampler.workers if alive(p)]


@pytest.fixture
def bare_pool(prefect_api: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A process pool with no limit and a deployment of pause_flow.py's flow."""
    name = f"recycle-{os.getpid()}-{time.monotonic_ns()}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
    source = flow.from_source(str(Path(__file__).parent), "pause_flow.py:pause")
    deployment_id = source.deploy(name, work_pool_name=name, print_next_steps=False)
    yield name, str(deployment_id)
    with get_client(sync_client=True) as client:
        client.delete_work_pool(name)


def start_worker(pool: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", WORKER_MODULE, "--pool", pool, "--limit", "2", "--name",
               f"{pool}-w", "--retired-file", str(log.with_suffix(".retired")), *extra]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "RECYCLE_TEST": pool},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_retired_worker_hands_over_its_runs_and_the_two_stay_within_the_limit(
    bare_pool: tuple[str, str], tmp_path: Path
) -> None:
    pool, deployment_id = bare_pool
    log = tmp_path / "worker.log"
    with get_client(sync_client=True) as client:
        ids = [client.create_flow_run_from_deployment(deployment_id, parameters={"seconds": 45}).id
               for _ in range(6)]  # fmt: skip

        def states() -> list[StateType]:
            found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id={"any_": ids}))
            return [r.state.type for r in found if r.state]

        with Sampler(("RECYCLE_TEST", pool)) as sampler:
            old = start_worker(pool, log)
            wait(lambda: states().count(StateType.RUNNING) == 2, 120, "two runs running")
            old.send_signal(signal.SIGUSR1)
            wait(lambda: log.with_suffix(".retired").exists(), 30, "the hand-over")
            children = flow_run_processes(old)  # as the host finds them: not its engine server
            assert len(children) == 2
            inherit = [arg for pid in children for arg in ("--inherit", str(pid))]
            new = start_worker(pool, log, *inherit)
            wait(lambda: log.read_text().count("started!") == 2, 60, "the new worker to start")
            time.sleep(3)  # a few polls
            assert states().count(StateType.RUNNING) == 2  # the old worker's, still running
            wait(lambda: set(states()) == {StateType.COMPLETED}, 300, "every run completed")
            assert old.wait(30) == 0  # it waited for its two runs, then exited
            assert len(states()) == 6
        new.send_signal(signal.SIGINT)
        new.wait(30)

    assert sampler.most_runs == 2, log.read_text()[-3000:]
