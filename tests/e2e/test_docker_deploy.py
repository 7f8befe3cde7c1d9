"""`registre deploy --docker` on a real Prefect server: Docker pools with the generated templates,
deployments that run from the image; process pools are not silently turned into Docker ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.deploy import process_template
from deployments.docker import (
    DockerOptions,
    deployment_job_variables,
    docker_templates,
    pull_steps,
)
from deployments.up import prefect_server
from tasks.control.pools import DEPLOYMENTS, OCR_ACTE, POOL_QUEUES
from tasks.settings import load_settings

pytestmark = pytest.mark.slow

REGISTRE = str(Path(sys.executable).with_name("registre"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A Prefect server of this test's own (its database in tmp_path), and the environment that
    points the CLI at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # the server reads it from os.environ
    with (
        prefect_server(tmp_path, port, settings=load_settings()) as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        yield {**os.environ, "PREFECT_API_URL": api}


def registre(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    wide = {**env, "COLUMNS": "1000"}  # a message on one line
    return subprocess.run(
        [REGISTRE, "deploy", *args], cwd=ROOT, env=wide, capture_output=True, text=True, timeout=300
    )


COSTS = {"COST_REGISTRE_CPU": "2", "COST_REGISTRE_RAM": "1.5", "COST_ACTE_OCR_RAM": "1.25"}
IMAGE = "registre-flows:test"


def test_deploy_makes_process_pools_or_with_docker_docker_pools_with_the_templates(
    server: dict[str, str],
):
    # options a Docker host could not use are refused before anything is made
    wrong = registre(server, "--image", IMAGE)
    assert wrong.returncode == 2 and "--image: only with --docker" in wrong.stdout
    relative = registre(server, "--docker", "--env-file", "registre.env")
    assert relative.returncode == 2 and "absolute path" in relative.stdout
    with get_client(sync_client=True) as client:
        assert client.read_work_pools() == []

    # the default is unchanged: process pools
    done = registre(server)
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        for pool in POOL_QUEUES:
            found = client.read_work_pool(pool)
            assert (found.type, found.base_job_template) == ("process", process_template())
    # and they are not silently turned into Docker pools: the operator deletes them first
    refused = registre(server, "--docker")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "registre is of type 'process'" in refused.stdout
    assert "Prefect cannot change a pool's type" in refused.stdout
    with get_client(sync_client=True) as client:
        for pool in POOL_QUEUES:
            assert client.read_work_pool(pool).type == "process"
            client.delete_work_pool(pool)

    env = {**server, **COSTS}
    done = registre(env, "--docker", "--image", IMAGE, "--env-file", "/srv/r.env")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Docker pools and deployments are in place" in done.stdout
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in COSTS.items()})
    wanted = docker_templates(settings, DockerOptions(image=IMAGE, env_file="/srv/r.env"))
    limits = deployment_job_variables(settings)
    with get_client(sync_client=True) as client:
        for pool, queues in POOL_QUEUES.items():
            found = client.read_work_pool(pool)
            assert (found.type, found.base_job_template) == ("docker", wanted[pool])
            assert {q.name for q in client.read_work_queues(work_pool_name=pool)} >= set(queues)
        for deployment in DEPLOYMENTS:
            found = client.read_deployment_by_name(deployment.full_name)
            assert found.work_pool_name == deployment.pool
            assert found.pull_steps == pull_steps()
            assert found.job_variables == limits.get(deployment.full_name, {})
        acte = client.read_deployment_by_name(OCR_ACTE.full_name).job_variables
        assert acte["mem_limit"] == "1280m"
        assert acte["container_create_kwargs"] == {"nano_cpus": 1_000_000_000}

    # again with another cost: the template follows it
    again = registre({**env, "COST_REGISTRE_RAM": "2"}, "--docker", "--image", IMAGE)
    assert again.returncode == 0, again.stdout + again.stderr
    with get_client(sync_client=True) as client:
        variables = client.read_work_pool("registre").base_job_template["variables"]
        assert variables["properties"]["mem_limit"]["default"] == "2048m"
        volumes = variables["properties"]["volumes"]["default"]
        assert volumes == ["/etc/registre/registre.env:/opt/registre-flows/.env:ro"]

    # the process pools' deploy does not take over the Docker pools either
    refused = registre(server)
    assert refused.returncode == 2 and "registre is of type 'docker'" in refused.stdout
    with get_client(sync_client=True) as client:
        assert {client.read_work_pool(p).type for p in POOL_QUEUES} == {"docker"}
