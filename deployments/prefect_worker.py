"""The Prefect process worker `registre worker` starts for a process pool: Prefect's own
ProcessWorker, starting each run's engine directly (below), with two additions so the host can
replace it before it grows far (see docs/operations.md, "Worker recycling"):

- SIGUSR1 retires it: it polls no more, lets the runs it is submitting reach their process, says
  so by creating the file `--retired-file`, waits for its runs to end (it still reports a
  crashed run), then exits;
- `--inherit PID` (repeatable): its successor counts each of those runs, still running under the
  retired worker, against its own `--limit` until that run ends, so that the two never run more
  than the limit together.

Its runs start warm, forked by an engine server of its own (deployments/engine_server.py),
unless `--cold` (WORKER_WARM_STARTS=false).

Run as `python -m deployments.prefect_worker --pool P --limit N --name W [...]`."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import anyio
from prefect.client.schemas.objects import FlowRun
from prefect.settings import get_current_settings
from prefect.utilities.processutils import (
    command_to_string,
    get_sys_executable,
    setup_signal_handlers_worker,
)
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

from deployments.engine_server import (
    ENGINE,
    ENTRYPOINT_ENV,
    SOCKET_ENV,
    ServerProcess,
    pool_flows,
)
from deployments.processes import alive
from deployments.worker_args import worker_options, worker_parser

POLL_S = 0.2  # how often retirement and inherited runs are checked


class DirectEngineConfiguration(ProcessJobConfiguration):
    """A run is Prefect's engine, started by deployments/engine_session.py in the directory of
    the deployment's code. Left to itself, Prefect 3.9 starts a workspace supervisor first, a
    second interpreter per run that resolves storage and dependencies this project does not
    use: on 2 cores with a backlog it doubled the Pending -> Running time (bench/pipeline.py).
    The directory is the code's own (the same path on every host): the engine copies nothing,
    and is told the flow's entrypoint rather than reading the deployment again."""

    def prepare_for_flow_run(self, flow_run: FlowRun, deployment: Any = None, *args: Any,
                             **kwargs: Any) -> None:  # fmt: skip
        if self.command is None:
            self.command = command_to_string([get_sys_executable(), "-I", "-S", ENGINE])
        directory = code_directory(deployment)
        if self.working_dir is None:
            self.working_dir = directory
        super().prepare_for_flow_run(flow_run, deployment, *args, **kwargs)
        if directory is not None and directory == self.working_dir and deployment.entrypoint:
            self.env.setdefault(ENTRYPOINT_ENV, deployment.entrypoint)


def code_directory(deployment: Any) -> Path | None:
    """Where a deployment's code already is: the directory its pull steps only set (what
    `prefect deploy` gives a deployment with no pull section), or its path. None when its pull
    steps do more, or say nothing: then Prefect's engine runs them."""
    if deployment is None:
        return None
    directory = Path(deployment.path) if deployment.path else None
    for step in deployment.pull_steps or []:
        [(name, options)] = step.items()
        if not name.endswith(".set_working_directory"):
            return None
        directory = Path(options["directory"])
    return directory


class RecyclableWorker(ProcessWorker):
    job_configuration = DirectEngineConfiguration

    def __init__(self, *args: Any, inherit: tuple[int, ...] = (),
                 engines: ServerProcess | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.inherit = inherit
        self.engines = engines
        self.retiring = False
        self.polling = anyio.Lock()  # held while a poll may be handing runs to the task group
        self.running = 0  # own runs from submission to their state reported after the exit

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        async with self.polling:
            if self.retiring:
                return []
            return await super().get_and_submit_flow_runs()

    async def _submit_run_and_capture_errors(
        self, flow_run: FlowRun, task_status: Any = None
    ) -> Any:
        self.running += 1
        try:
            return await super()._submit_run_and_capture_errors(flow_run, task_status)
        finally:
            self.running -= 1

    async def run(self, flow_run: FlowRun, configuration: Any, task_status: Any = None) -> Any:
        if self.engines is not None:
            self.engines.ensure_running()
            configuration.env[SOCKET_ENV] = str(self.engines.socket_path)
        return await super().run(flow_run, configuration, task_status)

    async def setup(self) -> None:
        await super().setup()
        for pid in self.inherit:
            if alive(pid):
                self.limiter.acquire_on_behalf_of_nowait(("inherited", pid))
                assert self._runs_task_group is not None
                self._runs_task_group.start_soon(self.release_when_gone, pid)

    async def release_when_gone(self, pid: int) -> None:
        while alive(pid):
            await anyio.sleep(POLL_S)
        self.limiter.release_on_behalf_of(("inherited", pid))

    async def retire(self, retired_file: Path) -> None:
        """Stop polling; once every run taken has its process, say so; return when none is left."""
        self.retiring = True
        async with self.polling:  # a poll in progress hands its runs over first
            pass
        while self._submitting_flow_run_ids:
            await anyio.sleep(POLL_S)
        retired_file.touch()
        self._logger.info("retired: no new runs; %d run(s) to finish", self.running)
        while self.running:
            await anyio.sleep(POLL_S)


@contextmanager
def engine_server(pool: str) -> Iterator[ServerProcess]:
    """This worker's engine server, on a socket of its own; stopped with the worker (it also
    stops by itself when the worker is gone). Until it listens, runs start cold."""
    # the environment Prefect gives its runs before their own (EngineCommandStarter's), which
    # the server compares with each run's
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)}
    with tempfile.TemporaryDirectory(prefix="registre-engines-") as directory:
        engines = ServerProcess(Path(directory), env, pool_flows(pool))
        try:
            yield engines
        finally:
            engines.stop()


async def serve(args: argparse.Namespace) -> None:
    setup_signal_handlers_worker(os.getpid(), "the process worker", print)
    with nullcontext() if args.cold else engine_server(args.pool) as engines:
        worker = RecyclableWorker(
            **worker_options(args), inherit=tuple(args.inherit), engines=engines
        )
        async with anyio.create_task_group() as group:
            group.start_soon(retire_on_signal, worker, args.retired_file, group.cancel_scope)
            await worker.start()
            group.cancel_scope.cancel()


async def retire_on_signal(
    worker: RecyclableWorker, retired_file: Path, scope: anyio.CancelScope
) -> None:
    with anyio.open_signal_receiver(signal.SIGUSR1) as signals:
        async for _ in signals:
            break
    await worker.retire(retired_file)
    scope.cancel()  # no run of its own is left: stop its loops


def main() -> None:
    parser = worker_parser("python -m deployments.prefect_worker")
    parser.add_argument("--retired-file", type=Path, required=True)
    parser.add_argument("--inherit", type=int, action="append", default=[])
    parser.add_argument("--cold", action="store_true", help="no engine server: runs start afresh")
    with suppress(KeyboardInterrupt):  # SIGINT or SIGTERM: Prefect's handler has said so
        anyio.run(serve, parser.parse_args())


if __name__ == "__main__":
    main()
