"""`registre worker`: one host. Registers its budget and what it can run (heartbeat), starts a
Prefect worker per pool with `--limit` from that (deployments/prefect_worker.py for a process
pool, deployments/docker_worker.py for a Docker pool), replaces a process pool's worker before
it grows far (deployments/recycle.py), dispatches documents (one host at a time), and on SIGTERM
or Ctrl-C stops taking runs, lets the runs in progress finish, settles whatever it had to stop,
and unregisters."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from deployments.deploy import PREFECT, ROOT
from deployments.processes import STOP_SIGNALS, alive, kill_group, process_tree
from deployments.recycle import RecyclePolicy, rss_mb
from tasks.control.dispatch import (
    ControlPlane,
    Ending,
    dispatch_until,
    settle_dead_run,
    stopped_message,
    stopping,
)
from tasks.control.planning import settings_offer
from tasks.control.pools import CONTROL_POOL, OCR_POOL, REGISTRE_POOL
from tasks.queue.table import Queue
from tasks.services import capacity_manager, redis_client, settings_budget
from tasks.settings import Settings

logger = logging.getLogger(__name__)

POOLS = (REGISTRE_POOL, OCR_POOL, CONTROL_POOL)
KILL_AFTER_S = 15  # after SIGTERM, a run's process has this long to report its crash itself
RETIRE_TIMEOUT_S = 60  # a retired worker hands over the runs it was submitting within this
# Prefect settings for the workers this command starts: poll every second (the default 10 s is
# most of a run's start delay) and ship our modules' log lines (limiter waits, 429 pauses) to
# the runs' logs in the UI.
WORKER_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks,flows",
}


def flow_run_processes(worker: subprocess.Popen[bytes]) -> dict[int, str]:
    """The flow-run processes a Prefect worker started, by pid, with their flow-run ids ("" for
    one gone while it was read); not its engine server (deployments/engine_server.py)."""
    try:
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    except OSError:
        return {}
    found = {pid: flow_run_id(pid) for pid in map(int, children)}
    return {pid: run_id for pid, run_id in found.items() if run_id is not None}


def flow_run_id(pid: int) -> str | None:
    """The flow-run id in a process's environment: "" when the process is gone, None when it is
    no flow run."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return ""
    for item in environ:
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


def pool_types(pools: tuple[str, ...]) -> dict[str, str]:
    """Each pool's type, which decides its worker: ours for `process` pools
    (deployments/prefect_worker.py) and `docker` pools (deployments/docker_worker.py),
    Prefect's own for any other."""
    from prefect import get_client

    found = {}
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                found[pool] = client.read_work_pool(pool).type
            except Exception as exc:  # not deployed yet: Prefect's worker creates it
                logger.warning("pool %s: %s; Prefect's own worker will serve it", pool, exc)
    return found


class Host:
    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.host_id = settings.host_id()
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # the one polling, per pool
        self.retiring: list[subprocess.Popen[bytes]] = []  # replaced, finishing their runs
        self.types: dict[str, str] = {}  # each pool's type, as the Prefect server says
        self.runs: dict[int, str] = {}  # flow-run processes seen, pid -> flow-run id
        self.pool_of: dict[int, str] = {}  # flow-run process -> its pool
        self.started: dict[str, int] = {}  # runs the polling worker of a pool has started
        self.stopping = threading.Event()
        self.hurry = threading.Event()  # a second Ctrl-C: stop the runs now

    def retired_file(self, pool: str) -> Path:
        return self.run_dir / f"worker-{self.host_id}-{pool}.retired"

    def start_worker(self, pool: str, limit: int, inherit: list[int] | None = None) -> None:
        log = (self.run_dir / f"worker-{self.host_id}-{pool}.log").open("ab")
        name = ["--pool", pool, "--limit", str(limit), "--name", f"{self.host_id}-{pool}"]
        if self.types.get(pool) == "process":
            command = [sys.executable, "-m", "deployments.prefect_worker", *name]
            command += ["--retired-file", str(self.retired_file(pool))]
            command += [arg for pid in inherit or [] for arg in ("--inherit", str(pid))]
            command += [] if self.settings.worker_warm_starts else ["--cold"]
        elif self.types.get(pool) == "docker":  # never recycled: its runs are containers
            command = [sys.executable, "-m", "deployments.docker_worker", *name]
        else:
            command = [PREFECT, "worker", "start", *name]
        env = {**os.environ, **WORKER_ENV, "REGISTRE_HOST_ID": self.host_id}
        # its own session: a Ctrl-C in the terminal reaches this process only, which drains
        self.workers[pool] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.started[pool] = 0

    def watch(self) -> None:
        """Note the runs the workers started, forget those that ended (a worker gone, its runs
        can still be followed by pid)."""
        polling = {worker.pid: pool for pool, worker in self.workers.items()}
        for worker in [*self.workers.values(), *self.retiring]:
            for pid, run_id in flow_run_processes(worker).items():
                if pid not in self.runs and worker.pid in polling:
                    self.started[polling[worker.pid]] += 1
                    self.pool_of[pid] = polling[worker.pid]
                self.runs[pid] = run_id or self.runs.get(pid, "")
        self.runs = {
            pid: run_id or flow_run_id(pid) or "" for pid, run_id in self.runs.items() if alive(pid)
        }
        self.pool_of = {pid: pool for pid, pool in self.pool_of.items() if pid in self.runs}

    def recycle(self, pool: str, limit: int, policy: RecyclePolicy) -> None:
        """Replace the pool's worker when it is due: the old one polls no more and hands over
        the runs it was submitting; the new one counts them against its limit until they end,
        while the old one waits for them and exits."""
        old = self.workers[pool]
        if self.types.get(pool) != "process" or old.poll() is not None:
            return
        reason = policy.reason(self.started[pool], rss_mb(old.pid))
        if reason is None:
            return
        logger.info("pool %s: replacing its Prefect worker (pid %d): %s", pool, old.pid, reason)
        flag = self.retired_file(pool)
        flag.unlink(missing_ok=True)
        os.kill(old.pid, signal.SIGUSR1)
        deadline = time.monotonic() + RETIRE_TIMEOUT_S
        while not flag.exists() and old.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not flag.exists():
            logger.warning(
                "pool %s: the old worker did not confirm its hand-over (%s); its runs in"
                " progress are counted as they are now",
                pool,
                "exited" if old.poll() is not None else f"{RETIRE_TIMEOUT_S} s",
            )
        flag.unlink(missing_ok=True)
        self.watch()
        self.retiring.append(old)
        self.start_worker(pool, limit, self.runs_of(pool))

    def runs_of(self, pool: str) -> list[int]:
        """The pool's runs still in progress on this host, whichever worker started them."""
        return [pid for pid, of in self.pool_of.items() if of == pool]

    def reap(self) -> None:
        """Forget the retired workers that finished their runs and exited."""
        for worker in [w for w in self.retiring if w.poll() is not None]:
            logger.info("retired Prefect worker %d exited (%s)", worker.pid, worker.returncode)
            self.retiring.remove(worker)

    def drain(self, cp: ControlPlane | None) -> None:
        """Stop taking runs, let those in progress finish (up to WORKER_DRAIN_SECONDS), then
        stop the rest and settle their rows, so no run stays Running behind this host."""
        self.watch()
        workers = [*self.workers.values(), *self.retiring]
        for worker in workers:
            kill_group(worker.pid, signal.SIGKILL)  # it polls no more; its runs live on
        for worker in workers:
            worker.wait()
        deadline = time.monotonic() + self.settings.worker_drain_seconds
        if self.runs:
            logger.info(
                "waiting for %d run(s) in progress to finish (Ctrl-C again stops them)",
                len(self.runs),
            )
        while self.runs and time.monotonic() < deadline and not self.hurry.is_set():
            time.sleep(0.5)
            self.watch()
        if not self.runs:
            return
        logger.warning("stopping %d run(s) still in progress", len(self.runs))
        if cp is not None:
            try:
                stopping(cp, [run_id for run_id in self.runs.values() if run_id])
            except Exception as exc:  # Redis down: their crash hooks will count an attempt
                logger.warning("could not mark the runs as stopped by this host: %s", exc)
        for pid in self.runs:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the engine reports Crashed and runs on_crashed
        deadline = time.monotonic() + KILL_AFTER_S
        while time.monotonic() < deadline and any(alive(pid) for pid in self.runs):
            time.sleep(0.2)
        for pid, run_id in self.runs.items():
            kill_group(pid, signal.SIGKILL)  # the run's session: itself, Playwright's driver
            if cp is not None and run_id:
                self.settle(cp, run_id)

    def settle(self, cp: ControlPlane, run_id: str) -> None:
        """A run this host stopped: Crashed in Prefect, its capacity and row given back."""
        try:
            run = cp.orchestrator.client.read_flow_run(run_id)
            if run.state and not run.state.is_final():
                cp.orchestrator.mark_crashed(run, f"host {self.host_id} stopped")
            if "job_id" not in run.parameters:
                return  # a rebalance: no row to give back
            deployment = cp.orchestrator.deployment_of(run)
            why = stopped_message(self.host_id)
            env, job_id = run.parameters["env"], run.parameters["job_id"]
            settle_dead_run(cp, deployment, run_id, env, job_id, Ending.STOPPED, why)
        except Exception as exc:  # Supabase or Prefect down: the reconciler does it later
            logger.warning(
                "could not settle run %s now (%s: %s); the rebalance will",
                run_id,
                type(exc).__name__,
                exc,
            )


@contextmanager
def signals_drain(host: Host) -> Iterator[None]:
    """SIGTERM, SIGHUP or Ctrl-C starts the drain; a second one hurries it."""

    def handler(signum: int, frame: object) -> None:
        (host.hurry if host.stopping.is_set() else host.stopping).set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_host(settings: Settings, pools: tuple[str, ...], run_dir: Path) -> None:
    """Everything this host starts is stopped when it returns (see deployments.processes)."""
    with process_tree():
        _run_host(settings, pools, run_dir)


def _run_host(settings: Settings, pools: tuple[str, ...], run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    offer = settings_offer(settings, pools)
    for note in offer.notes:
        logger.warning(note)
    limits = {**offer.as_runs(), CONTROL_POOL: 1}
    if CONTROL_POOL in pools and settings.alert_webhook_url is None:
        logger.warning("ALERT_WEBHOOK_URL is not set: no alert will be sent (docs/operations.md)")
    documents = REGISTRE_POOL in pools or OCR_POOL in pools
    if documents:
        queue = Queue(settings)
        queue.check_status_names()
        for env in queue.environments:
            if env not in queue.unavailable:
                queue.storage(env).ensure_buckets()
    host = Host(settings, run_dir)
    runs = offer.as_runs() if documents else {}
    with ExitStack() as stack:
        stack.enter_context(signals_drain(host))
        capacity = capacity_manager(settings, redis_client(settings))
        stack.callback(capacity.client.close)
        stack.enter_context(
            capacity.host_registered(
                host.host_id, settings_budget(settings), runs, list(offer.notes)
            )
        )
        cp = stack.enter_context(ControlPlane.open(settings)) if documents else None
        host.types = pool_types(pools)
        for pool in pools:
            if limits[pool] > 0:
                host.start_worker(pool, limits[pool])
            else:
                logger.warning("pool %s: no worker on this host (it can run 0)", pool)
        logger.info(
            "host %s: %s; logs in %s; Ctrl-C stops it",
            host.host_id,
            ", ".join(f"{p} x{limits[p]}" for p in pools),
            run_dir,
        )
        dispatcher = None
        if cp is not None:
            dispatcher = threading.Thread(
                target=dispatch_until,
                name="dispatch",
                daemon=True,
                args=(cp, settings.dispatch_interval_seconds, host.stopping),
            )
            dispatcher.start()
        policy = RecyclePolicy.of(settings)
        while not host.stopping.wait(1):
            host.watch()
            host.reap()
            for pool in list(host.workers):
                host.recycle(pool, limits[pool], policy)
            for pool, worker in host.workers.items():
                if worker.poll() is not None:
                    logger.error(
                        "the Prefect worker of pool %s exited (%s); restarting it",
                        pool,
                        worker.returncode,
                    )
                    host.start_worker(pool, limits[pool], host.runs_of(pool))
        logger.info("host %s stopping: no new runs", host.host_id)
        runs.update(dict.fromkeys(runs, 0))  # the next heartbeat offers nothing
        if dispatcher is not None:
            dispatcher.join()
        host.drain(cp)
        logger.info("host %s stopped", host.host_id)
