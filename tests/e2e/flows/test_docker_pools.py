"""Docker work pools, run for real: the image built here (`--local-base`), `registre deploy
--docker --network host`, a `registre worker` whose Prefect workers are Docker workers, and
documents of each kind through registre and OCR, each run a container. What a container was is
read from Docker itself (the engine's events and `inspect`), not from our templates.

A Docker engine is started as these machines run one (sandbox/docker_engine.py) when none
answers, and stopped after. The module has a Prefect server of its own: a pool's type cannot
change, and the other tests' pools are process pools."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, NotFound
from prefect.client.schemas.objects import FlowRun, StateType

from deployments.docker import CHROMIUM_SHM_SIZE, settings_file
from deployments.image import build
from sandbox.docker_engine import engine
from sandbox.registry import control
from sandbox.registry.catalogue import ACCOUNTS, INDEX_DOCUMENTS
from tasks.control.pools import BY_FLOW
from tasks.coordination.capacity.budget import WorkerKind
from tasks.queue.statuses import SEED
from tasks.services import cost_table
from tasks.settings import load_settings

from .conftest import REGISTRE, System, throwaway_prefect_server
from .control_plane import (
    acte_columns,
    capacity_leases,
    index_columns,
    plan_columns,
    run_of,
    state_of,
)

# One engine, one image: these tests stay in this file, which the tier runs in one process
# (scripts/test: pytest-xdist by file); a second file would start a second engine beside it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

HOST = "docker-1"
# Each kind its own cost, so that each container shows its own kind's limits; a container may
# not ask for more CPU than the machine has (2 here).
COSTS = {"COST_REGISTRE_CPU": "1", "COST_REGISTRE_RAM": "1",
         "COST_INDEX_OCR_CPU": "0.75", "COST_INDEX_OCR_RAM": "0.75",
         "COST_ACTE_OCR_CPU": "0.5", "COST_ACTE_OCR_RAM": "0.5"}  # fmt: skip
HOST_ENV = {"SERVER_MAX_CPU": "8", "SERVER_MAX_RAM": "16", "WORKER_COUNT": "1",
            "OCR_WORKER_POOL_SIZE": "2", "CAPACITY_LEASE_SECONDS": "20", **COSTS}  # fmt: skip
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.DockerClient]:
    with engine(tmp_path_factory.mktemp("dockerd")):
        client = docker.from_env()
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="module")
def worker_image(docker_engine: docker.DockerClient) -> str:
    return build(local=True)  # Docker Hub is out of reach here; cached by its content tag


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This module's own server: its pools are Docker pools."""
    with throwaway_prefect_server(tmp_path_factory.mktemp("prefect-server-docker")):
        yield


class Containers(threading.Thread):
    """Every container the engine creates while it runs, inspected as it is created (a run's
    container removes itself when the run ends), and those destroyed."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.events = client.events(decode=True, filters={"type": "container"})
        self.created: dict[str, dict[str, Any]] = {}
        self.destroyed: set[str] = set()

    def run(self) -> None:
        try:
            for event in self.events:
                if event.get("Action") == "create":
                    try:
                        self.created[event["id"]] = self.client.api.inspect_container(event["id"])
                    except NotFound:  # gone already: its run lasted less than the inspect
                        self.created[event["id"]] = {}
                elif event.get("Action") == "destroy":
                    self.destroyed.add(event["id"])
        except DockerException:
            pass  # closed

    def of_run(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (cid, c)
            for cid, c in list(self.created.items())
            if c and c["Config"]["Labels"].get("io.prefect.flow-run-id") == str(run_id)
        ]

    def close(self) -> None:
        self.events.close()


@pytest.fixture
def docker_system(
    pipeline, worker_image: str, docker_engine: docker.DockerClient, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[System, Containers, Path]]:  # fmt: skip
    for name, value in {**HOST_ENV, "REGISTRE_HOST_ID": HOST}.items():
        monkeypatch.setenv(name, value)
    # the runs' settings: what the host runs with, in the file each container mounts
    env_file = tmp_path / "registre.env"
    env_file.write_text(settings_file(os.environ))
    env_file.chmod(0o644)  # the image's user (uid 10001) reads it
    done = subprocess.run(
        [REGISTRE, "deploy", "--docker", "--image", worker_image, "--env-file",
         str(env_file), "--network", "host"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    containers = Containers(docker_engine)
    containers.start()
    system = System(pipeline, None, tmp_path)
    try:
        yield system, containers, env_file
    finally:
        # a host's stop does not reach its runs' containers: kill them while its Docker worker
        # still watches, so that their runs end Crashed (a rebalance left Running would keep
        # the next test's out), then stop the host
        for container in docker_engine.containers.list(filters={"label": "io.prefect.version"}):
            with suppress(DockerException):  # it ended meanwhile
                container.kill()
        time.sleep(5)
        for host_id in list(system.hosts):
            system.stop_host(host_id, hurry=True)
        containers.close()
        for container in docker_engine.containers.list(
            all=True, filters={"label": "io.prefect.version"}
        ):
            container.remove(force=True)


def secrets(pipeline) -> list[str]:
    settings = load_settings()
    keys = [settings.gemini_api_key.get_secret_value(), pipeline.project.service_key]
    return [*keys, *(a.password for a in ACCOUNTS)]


def ended_document_runs(system) -> list[FlowRun]:
    """The document runs, once none is still going."""
    runs = [r for r in system.runs() if "job_id" in r.parameters]
    return [] if any(not r.state.is_final() for r in runs) else runs


def test_documents_of_each_kind_run_as_containers_held_to_their_costs(docker_system):
    system, containers, env_file = docker_system
    pipeline = system.pipeline
    jobs = {
        "index": pipeline.insert("index", **index_columns()),
        "acte": pipeline.insert("acte", **acte_columns()),
        "plan": pipeline.insert("plan_cadastraux", **plan_columns()),
    }
    system.start_host(HOST, REGISTRE_HOST_ID=HOST)
    system.wait(lambda: all(pipeline.row(j)["status_id"] == SEED.done for j in jobs.values()),
                900, "the three documents to be done")  # fmt: skip

    # a run marks its row done before it ends: its container may still be exiting
    document_runs = system.wait(lambda: ended_document_runs(system), 120, "the runs to end")
    costs = cost_table(load_settings())
    registre_runs = [r.parameters["job_id"] for r in document_runs if r.name.startswith("registre")]
    assert sorted(registre_runs) == sorted(jobs.values())  # one download each
    shown = secrets(pipeline)
    flows = set()
    for run in document_runs:
        assert run.state.type is StateType.COMPLETED, (run.name, run.state)
        [(_, container)] = system.wait(lambda r=run: containers.of_run(r.id), 10, run.name)
        labels = container["Config"]["Labels"]
        deployment = BY_FLOW[labels["io.prefect.flow-name"]]
        flows.add(deployment.flow)
        cost = costs[deployment.kind]
        host = container["HostConfig"]
        assert host["Memory"] == round(cost.ram * 1024) * MIB, run.name
        assert host["MemorySwap"] == host["Memory"], run.name  # no swap on top
        assert host["NanoCpus"] == round(cost.cpu * 1e9), run.name
        chromium = deployment.kind is WorkerKind.REGISTRE
        assert host["ShmSize"] == (1024 * MIB if chromium else 64 * MIB), run.name
        assert CHROMIUM_SHM_SIZE == "1g"
        assert host["NetworkMode"] == "host"
        [mount] = container["Mounts"]
        assert (mount["Source"], mount["Destination"], mount["RW"]) == (
            str(env_file),
            "/opt/registre-flows/.env",
            False,
        )
        everything = json.dumps(container)
        assert not [s for s in shown if s in everything], f"a secret in {run.name}'s container"
    assert flows == set(BY_FLOW)  # each kind of run: registre and both OCRs
    # gone after their runs: removed by Docker, none left behind
    ids = {cid for r in document_runs for cid, _ in containers.of_run(r.id)}
    system.wait(lambda: ids <= containers.destroyed, 60, "the runs' containers to be removed")
    left = {c.id for c in containers.client.containers.list(all=True)}
    assert not ids & left


def test_a_container_killed_mid_download_is_taken_back_and_downloaded_once_more(docker_system):
    system, containers, _ = docker_system
    pipeline = system.pipeline
    control.reset_counters(pipeline.registry)
    control.set_faults(pipeline.registry, latency_s=1.5)  # a download of ~15 s
    job_id = pipeline.insert("index", **index_columns(INDEX_DOCUMENTS[1]))
    system.start_host(HOST, REGISTRE_HOST_ID=HOST)
    run = system.wait(lambda: (r := run_of(system, job_id)) and r.state.is_running() and r,
                      300, "the registre run to start")  # fmt: skip
    system.wait(lambda: control.counters(pipeline.registry)["pages"] >= 3, 120, "the download")
    assert control.counters(pipeline.registry)["downloads"] == 0
    [(cid, _)] = containers.of_run(run.id)
    containers.client.containers.get(cid).kill()
    control.set_faults(pipeline.registry, latency_s=0)

    # the Docker worker says so, from the exit code Docker gives (deployments/docker_worker.py)
    crashed = system.wait(lambda: (s := state_of(system, run.id)).type is StateType.CRASHED and s,
                          60, "Crashed")  # fmt: skip
    assert "137" in crashed.message, crashed.message  # SIGKILL
    system.wait(lambda: pipeline.row(job_id)["status_id"] == SEED.done, 600, "the retry to finish")
    row = pipeline.row(job_id)
    assert row["attemtps"] == 1, row["error_message"]  # the killed run counted one
    assert control.counters(pipeline.registry)["downloads"] == 1  # exactly once more
    assert not capacity_leases(str(run.id)), "the dead run's capacity was not given back"
    registre_runs = [r for r in system.runs("registre") if r.parameters["job_id"] == job_id]
    assert len(registre_runs) == 2
    system.wait(lambda: not any(capacity_leases(f"{flow}:") for flow in BY_FLOW), 60,
                "every document run's capacity back")  # fmt: skip
    # the last run (its OCR) settles its row, then runs its hooks and exits
    system.wait(lambda: not [c for c in containers.client.containers.list()
                             if c.labels.get("io.prefect.flow-name") in BY_FLOW],
                60, "no document run's container left")  # fmt: skip
