"""`registre up`: everything one host needs, in one command.

A Prefect server (unless PREFECT_API_URL points at one), the work pools, the deployments of
prefect.yaml, a worker per pool, this host's capacity budget in Redis, and a dispatcher that starts
a flow run whenever a document is waiting and a slot is free: Prefect only ever holds the runs that
can start now, the backlog stays in extraction_queue.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.workers.process import ProcessWorker

from tasks.allocation import Split, allocate, ocr_capacity
from tasks.capacity import CapacityManager, cost_table, settings_budget
from tasks.queue import Queue
from tasks.settings import ConfigError, Settings
from tasks.storage import Storage

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))
DISPATCH_EVERY_S = 2.0
STARTING = [StateType.SCHEDULED, StateType.PENDING]  # created, document not claimed yet
WORKING = [StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]  # may hold a document


@dataclass(frozen=True)
class Slot:
    """One deployment the dispatcher feeds: its flow, the queue rows it takes, its pool."""

    deployment: str  # "<flow name>/<deployment name>"
    pool: str
    queue: str


REGISTRE = Slot("registre/registre", "registre", "default")
OCR_INDEX = Slot("ocr-index/ocr-index", "ocr", "index")
OCR_ACTE = Slot("ocr-acte/ocr-acte", "ocr", "acte")


def runs_to_start(waiting: int, starting: int, working: int, limit: int) -> int:
    """A new run for each waiting document no starting run will take, within the free slots."""
    return max(0, min(waiting - starting, limit - starting - working))


@contextmanager
def prefect_server(run_dir: Path, port: int = 4200) -> Iterator[str]:
    api = f"http://127.0.0.1:{port}/api"
    log = (run_dir / "prefect-server.log").open("ab")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the Prefect server exited; see {log.name}")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the Prefect server did not start in 120 s; see {log.name}")
        logger.info("Prefect server at %s (UI: http://127.0.0.1:%d)", api, port)
        yield api
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def create_pools(settings: Settings) -> None:
    """Pools and queues, with limits from the configuration (`prefect deploy` creates neither)."""
    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        for name, limit in (("registre", settings.worker_count),
                            ("ocr", settings.ocr_worker_pool_size)):  # fmt: skip
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template,
                               concurrency_limit=limit),
                overwrite=True,
            )  # fmt: skip
        for slot in (REGISTRE, OCR_INDEX, OCR_ACTE):
            with suppress(ObjectAlreadyExists):
                client.create_work_queue(name=slot.queue, work_pool_name=slot.pool)


def deploy(env: dict[str, str]) -> None:
    command = [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def start_worker(pool: str, limit: int, env: dict[str, str], run_dir: Path) -> subprocess.Popen:
    log = (run_dir / f"worker-{pool}.log").open("ab")
    command = [PREFECT, "worker", "start", "--pool", pool, "--limit", str(max(1, limit)),
               "--type", "process"]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class Dispatcher:
    """Starts runs for waiting documents, up to each deployment's share of the capacity."""

    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue
        self.deployments: dict[str, str] = {}
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.applied: Split | None = None

    def split(self, index_waiting: int, acte_waiting: int) -> Split:
        """The OCR slots between index and acte, by queue depth, within the capacity left."""
        s = self.settings
        costs = cost_table(s)
        room = ocr_capacity(settings_budget(s), s.worker_count, costs)
        return allocate(s.ocr_worker_pool_size, index_waiting, acte_waiting,
                        min_index=s.ocr_min_index_workers, min_acte=s.ocr_min_acte_workers,
                        capacity=room, costs=costs)  # fmt: skip

    def apply(self, client: SyncPrefectClient, split: Split) -> None:
        """Publish a changed split: the OCR queues' limits in Prefect, `worker_pool:allocation`
        in Redis (the record operators read)."""
        if split == self.applied:
            return
        for slot, limit in ((OCR_INDEX, split.index), (OCR_ACTE, split.acte)):
            queue = client.read_work_queue_by_name(slot.queue, work_pool_name=slot.pool)
            client.update_work_queue(queue.id, concurrency_limit=limit)
        key = f"{self.settings.redis_key_prefix}worker_pool:allocation"
        self.redis.set(key, json.dumps(split.as_json()))
        self.applied = split
        logger.info("OCR split: %s", split.as_json())

    def waiting(self) -> dict[Slot, int]:
        s = self.queue.statuses
        totals = {REGISTRE: 0, OCR_INDEX: 0, OCR_ACTE: 0}
        for counts in self.queue.counts(claimable=True).values():
            for (status, source), rows in counts.items():
                if status == s.waiting:
                    totals[REGISTRE] += rows
                elif status == s.ready_for_ocr and source in ("index", "acte"):
                    totals[OCR_INDEX if source == "index" else OCR_ACTE] += rows
        return totals

    @staticmethod
    def count_runs(client: SyncPrefectClient, slot: Slot, states: list[StateType]) -> int:
        return client.count_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))
            ),
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[slot.deployment.split("/", 1)[1]])
            ),
        )

    def tick(self) -> int:
        waiting = self.waiting()
        split = self.split(waiting[OCR_INDEX], waiting[OCR_ACTE])
        limits = {
            REGISTRE: self.settings.worker_count,
            OCR_INDEX: split.index,
            OCR_ACTE: split.acte,
        }
        started = 0
        with get_client(sync_client=True) as client:
            self.apply(client, split)
            for slot, limit in limits.items():
                starting, working = (self.count_runs(client, slot, states)
                                     for states in (STARTING, WORKING))  # fmt: skip
                for _ in range(runs_to_start(waiting[slot], starting, working, limit)):
                    if slot.deployment not in self.deployments:
                        deployment = client.read_deployment_by_name(slot.deployment)
                        self.deployments[slot.deployment] = str(deployment.id)
                    client.create_flow_run_from_deployment(self.deployments[slot.deployment])
                    started += 1
        return started


def up(settings: Settings, run_dir: Path) -> None:
    if not settings.environments():
        raise ConfigError(
            "no Supabase environment is configured: set PROD_/STAGING_/DEV_SUPABASE_URL and"
            " _SERVICE_KEY (or run `bash scripts/run` without them to use the local stand-ins)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    # a service manager stops with SIGTERM: unwind as for Ctrl-C, so workers and server stop too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    queue = Queue(settings)
    queue.check_status_names()
    for env in queue.clients:
        Storage(queue.client(env)).ensure_buckets()
    with ExitStack() as stack:
        api = os.environ.get("PREFECT_API_URL") or stack.enter_context(prefect_server(run_dir))
        # Prefect reads its settings at import: this process's clients need telling too
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        os.environ["PREFECT_API_URL"] = api
        env = {**os.environ, "REGISTRE_FLOWS_HOME": str(ROOT)}
        create_pools(settings)
        deploy(env)
        for pool, limit in (("registre", settings.worker_count),
                            ("ocr", settings.ocr_worker_pool_size)):  # fmt: skip
            worker = start_worker(pool, limit, env, run_dir)
            stack.callback(stop, worker)
        capacity = CapacityManager.from_settings(settings)
        stack.enter_context(capacity.host_registered(None, settings_budget(settings)))
        dispatcher = Dispatcher(settings, queue)
        logger.info("running; logs in %s; Ctrl-C stops everything", run_dir)
        last_recovery = 0.0
        while True:
            try:
                if started := dispatcher.tick():
                    logger.info("started %d run(s)", started)
                if time.monotonic() - last_recovery > settings.ocr_rebalance_interval_ms / 1000:
                    queue.recover_expired()
                    last_recovery = time.monotonic()
            except Exception:  # a Supabase or Prefect hiccup must not stop the host
                logger.exception("dispatch failed; trying again")
            time.sleep(DISPATCH_EVERY_S)
