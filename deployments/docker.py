"""Docker work pools (`registre deploy --docker`): each pool's base job template, holding a run's
container to what the cost table says the run costs, and what the deployments need to run their
code from the image. Pure functions of the settings; deployments/deploy.py applies them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.control.pools import CONTROL_POOL, DOCUMENT_DEPLOYMENTS, OCR_POOL, REGISTRE_POOL
from tasks.coordination.capacity.budget import Cost, WorkerKind
from tasks.services import cost_table
from tasks.settings import Settings

IMAGE_WORKDIR = "/opt/registre-flows"  # the Dockerfile's WORKDIR: the code every run loads
DEFAULT_IMAGE = "registre-flows:latest"
DEFAULT_ENV_FILE = "/etc/registre/registre.env"  # on each Docker host; holds the secrets
# The rebalance only calls the Prefect API, Redis and Supabase; no host budget holds it.
CONTROL_COST = Cost(cpu=0.5, ram=0.5)
# Docker's /dev/shm is 64 MB, in which Chromium's renderers crash on heavy pages; tmpfs pages
# count against the container's memory limit, so this does not let a run use more memory.
CHROMIUM_SHM_SIZE = "1g"
# Our modules' log lines (limiter waits, 429 pauses) in the runs' logs, as for process pools.
RUN_ENV = {"PREFECT_LOGGING_EXTRA_LOGGERS": "tasks,flows"}


@dataclass(frozen=True)
class DockerOptions:
    image: str = DEFAULT_IMAGE
    env_file: str = DEFAULT_ENV_FILE  # a path on the Docker host, mounted as the runs' .env
    network: str = "host"  # "host", or the name of a Docker network

    def __post_init__(self) -> None:
        if not self.image.strip():
            raise ValueError("the Docker image name is empty")
        if not self.env_file.startswith("/"):
            raise ValueError(
                f"the env file must be an absolute path on the Docker hosts, not {self.env_file!r}"
            )
        if ":" in self.env_file:
            raise ValueError(f"the env file path {self.env_file!r} must not contain ':'")


def memory(gb: float) -> str:
    """Docker's notation, in MiB (1 GB of the cost table = 1024 MiB)."""
    return f"{round(gb * 1024)}m"


def container_limits(cost: Cost, *, chromium: bool = False) -> dict[str, Any]:
    """Job variables that hold a run to its cost: its memory with no swap on top, and its vCPU
    through docker-py's `nano_cpus` (prefect-docker has no CPU variable). A cost of 0 sets no
    limit, as in the capacity maths."""
    limits: dict[str, Any] = {"mem_limit": None, "memswap_limit": None}
    if cost.ram > 0:
        limits["mem_limit"] = limits["memswap_limit"] = memory(cost.ram)
    create: dict[str, Any] = {}
    if cost.cpu > 0:
        create["nano_cpus"] = round(cost.cpu * 1e9)
    if chromium:
        create["shm_size"] = CHROMIUM_SHM_SIZE
    limits["container_create_kwargs"] = create or None
    return limits


def pool_costs(costs: dict[WorkerKind, Cost]) -> dict[str, Cost]:
    """What a run of each pool may use. The OCR pool holds index and acte runs: its template
    takes the larger of the two per resource, so a run is never held below its cost, and each
    OCR deployment gets its own kind's limits (deployment_job_variables)."""
    index, acte = costs[WorkerKind.INDEX_OCR], costs[WorkerKind.ACTE_OCR]
    return {
        REGISTRE_POOL: costs[WorkerKind.REGISTRE],
        OCR_POOL: Cost(max(index.cpu, acte.cpu), max(index.ram, acte.ram)),
        CONTROL_POOL: CONTROL_COST,
    }


def docker_template(cost: Cost, options: DockerOptions, *, chromium: bool = False) -> dict:
    """prefect-docker's base job template with this project's defaults."""
    from prefect_docker.worker import DockerWorker  # docker-py: only for Docker pools

    template = copy.deepcopy(DockerWorker.get_default_base_job_template())
    network = (
        {"network_mode": "host", "networks": []}
        if options.network == "host"
        else {"network_mode": None, "networks": [options.network]}
    )
    defaults = {
        "image": options.image,
        "image_pull_policy": "IfNotPresent",  # a locally built image is not pulled
        **network,
        "env": dict(RUN_ENV),
        # the host's settings file, read by the runs' Settings as .env (secrets stay on the host)
        "volumes": [f"{options.env_file}:{IMAGE_WORKDIR}/.env:ro"],
        "auto_remove": True,  # one container per run, a rebalance every 30 s
        "stream_output": False,  # runs log to the Prefect API
        **container_limits(cost, chromium=chromium),
    }
    properties = template["variables"]["properties"]
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template


def docker_templates(settings: Settings, options: DockerOptions) -> dict[str, dict]:
    """The base job template of each pool."""
    return {
        pool: docker_template(cost, options, chromium=pool == REGISTRE_POOL)
        for pool, cost in pool_costs(cost_table(settings)).items()
    }


def settings_file(environ: Mapping[str, str]) -> str:
    """What a Docker host's `--env-file` holds for its runs: the project's settings among
    `environ` (the host's own), one `NAME=value` a line; not the host's id, which its Docker
    worker gives each container (deployments/docker_worker.py)."""
    names = {name.upper() for name in Settings.model_fields} - {"REGISTRE_HOST_ID"}
    return "".join(f"{k}={v}\n" for k, v in sorted(environ.items()) if k in names)


def pull_steps() -> list[dict[str, Any]]:
    """The code is in the image: runs load it from its working directory (without this,
    `prefect deploy` points them at the directory it ran in, on the deploying machine)."""
    return [{"prefect.deployments.steps.set_working_directory": {"directory": IMAGE_WORKDIR}}]


def deployment_job_variables(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each document deployment's own limits, by full name (an acte run is held to the acte
    cost, not to the OCR pool's larger one)."""
    costs = cost_table(settings)
    return {
        d.full_name: container_limits(costs[d.kind], chromium=d.pool == REGISTRE_POOL)
        for d in DOCUMENT_DEPLOYMENTS
    }
