"""`registre deploy`: the work pools and queues, then `prefect deploy --all`. Once per Prefect
server (or again after a change); idempotent."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.workers.process import ProcessWorker

from deployments.alerts import sync_alerts
from deployments.docker import (
    DockerOptions,
    deployment_job_variables,
    docker_templates,
    pull_steps,
)
from tasks.control.orchestration import ensure_pools
from tasks.control.pools import DEPLOYMENTS, POOL_QUEUES, REBALANCE
from tasks.settings import Settings

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def process_template() -> dict:
    """The process worker's template, its runs' output not piped through the worker: a run
    must outlive a worker that stops (`registre worker` drains), and it logs to the API."""
    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["stream_output"]["default"] = False
    return template


def deploy(settings: Settings, docker: DockerOptions | None = None) -> None:
    """Process pools, or with `docker` Docker pools whose runs are containers of its image."""
    if docker is None:
        pool_type, templates = "process", dict.fromkeys(POOL_QUEUES, process_template())
    else:
        pool_type, templates = "docker", docker_templates(settings, docker)
    with get_client(sync_client=True) as client:
        created = ensure_pools(client, templates, pool_type)
    if created:
        logger.info("created %s", ", ".join(created))
    command = [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"]
    done = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"prefect deploy failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    set_rebalance_interval(settings.ocr_rebalance_interval_ms / 1000)
    with get_client(sync_client=True) as client:
        if docker is not None:
            run_from_image(client, settings)
        alerting = sync_alerts(client, settings)
    if alerting:
        logger.info("alerts: %d automations call ALERT_WEBHOOK_URL", len(alerting))
    logger.info("deployed prefect.yaml: %s (%s pools)", ", ".join(POOL_QUEUES), pool_type)


def run_from_image(client: SyncPrefectClient, settings: Settings) -> None:
    """Docker pools: every deployment loads its code from the image, and each document
    deployment's containers get its own kind's limits."""
    limits = deployment_job_variables(settings)
    for deployment in DEPLOYMENTS:
        found = client.read_deployment_by_name(deployment.full_name)
        client.update_deployment(
            found.id,
            DeploymentUpdate(
                pull_steps=pull_steps(), job_variables=limits.get(deployment.full_name, {})
            ),
        )


def set_rebalance_interval(seconds: float) -> None:
    """prefect.yaml says 30 s; OCR_REBALANCE_INTERVAL_MS may say otherwise."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(REBALANCE.full_name)
        for schedule in client.read_deployment_schedules(deployment.id):
            interval = getattr(schedule.schedule, "interval", None)
            if interval is not None and interval != timedelta(seconds=seconds):
                client.update_deployment_schedule(
                    deployment.id,
                    schedule.id,
                    schedule=IntervalSchedule(interval=timedelta(seconds=seconds)),
                )
                logger.info("rebalance every %g s", seconds)
