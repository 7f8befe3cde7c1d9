"""The Prefect worker `registre worker` starts for a Docker pool: prefect-docker's DockerWorker,
with two changes that make its runs behave as a process pool's:

- Its containers get the host's `REGISTRE_HOST_ID`, as a process pool's runs inherit it: a run
  reserves its capacity on the budget of the host that started it, whatever the settings file
  the pool mounts says (one path for every host), and hosts sharing one machine stay apart.
- It reports how a container really ended. prefect-docker 0.7 takes a container's exit code from
  its state as last inspected, while it still ran (0), when its output is not streamed: a run's
  container killed by `docker kill`, by the kernel at its memory limit or by a host's restart was
  left Running in Prefect, its Crashed state coming only from the rebalance's reconcile once its
  capacity lease had expired, and a killed rebalance container kept the next rebalances out
  (`concurrency_limit: 1`) until the server let its slot go. Here the code `docker wait` returns
  is the run's: a killed container is Crashed at once ("exit code 137").

Run as `python -m deployments.docker_worker --pool P --limit N --name W`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Generator
from contextlib import suppress
from typing import Any

import anyio
from prefect.utilities.processutils import setup_signal_handlers_worker
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration

from deployments.worker_args import worker_options, worker_parser


class HostDockerWorker(DockerWorker):
    async def run(
        self, flow_run: Any, configuration: DockerWorkerJobConfiguration, task_status: Any = None
    ) -> Any:
        if host_id := os.environ.get("REGISTRE_HOST_ID"):
            configuration.env = {**configuration.env, "REGISTRE_HOST_ID": host_id}
        return await super().run(flow_run, configuration, task_status)

    def _watch_container(
        self, docker_client: Any, container_id: str, configuration: DockerWorkerJobConfiguration
    ) -> Generator[Any, None, None]:
        if configuration.stream_output:  # it inspects the container again after its output
            yield from super()._watch_container(docker_client, container_id, configuration)
            return
        container = docker_client.containers.get(container_id)
        self._logger.info(f"Docker container {container.name!r} has status {container.status!r}")
        yield container
        exit_code = container.wait()["StatusCode"]
        container.attrs["State"].update(Status="exited", ExitCode=exit_code)
        self._logger.info(f"Docker container {container.name!r} exited with code {exit_code}")
        yield container


async def serve(args: argparse.Namespace) -> None:
    setup_signal_handlers_worker(os.getpid(), "the Docker worker", print)
    await HostDockerWorker(**worker_options(args)).start()


def main() -> None:
    parser = worker_parser("python -m deployments.docker_worker")
    with suppress(KeyboardInterrupt):  # SIGINT or SIGTERM: Prefect's handler has said so
        anyio.run(serve, parser.parse_args())


if __name__ == "__main__":
    main()
