"""A run's start cost in a container against a process, in the same run: the same documents
through the same stack, first on process pools, then on Docker pools (the image built here on
the local base), each run's created -> Running (the flow's first line) read from the Prefect
API. Also the image's build time, cold (when its tag is new) and cached, and its size.

    .venv/bin/python bench/run_start.py [--documents 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from prefect import get_client
from stack import Stack  # bench/stack.py, beside this file

from deployments.image import build
from sandbox.docker_engine import engine
from sandbox.registry.catalogue import ACTES
from tasks.control.pools import CONTROL_POOL, OCR_POOL, REGISTRE_POOL

# The same host for both kinds; a container may not ask for more vCPU than the machine has.
# One OCR slot, for actes only: the host refuses a pool smaller than the two OCR minimums.
HOST_ENV = {"SERVER_MAX_CPU": "8", "SERVER_MAX_RAM": "16", "WORKER_COUNT": "1",
            "OCR_WORKER_POOL_SIZE": "1", "OCR_MIN_INDEX_WORKERS": "0", "COST_REGISTRE_CPU": "1",
            "COST_INDEX_OCR_CPU": "1", "COST_ACTE_OCR_CPU": "1"}  # fmt: skip
ROWS = [("acte", a.numero, a.circonscription, None, None, a.type_document)
        for a in ACTES if not a.paper_only]  # fmt: skip


def timed_build() -> tuple[str, float, float]:
    """The image, the first build's seconds and a second one's (which finds it)."""
    began = time.monotonic()
    image = build(local=True)
    first = time.monotonic() - began
    began = time.monotonic()
    build(local=True)
    return image, first, time.monotonic() - began


def start_costs(stack: Stack, documents: int) -> list[float]:
    """created -> Running of every run of `documents` actes sent one after the other (each
    run finds its slot free: what is measured is the start, not a queue)."""
    ids = []
    for i in range(documents):
        [job_id] = stack.insert([ROWS[i % len(ROWS)]])
        ids.append(job_id)
        deadline = time.monotonic() + 600
        while stack.rows([job_id])[job_id][0] not in (4, 5):
            assert time.monotonic() < deadline, f"document {job_id} did not finish"
            if stack.hosts["bench"].poll() is not None:  # a refused setting, say
                log = (stack.tmp / "host-bench.log").read_text()[-2000:]
                raise SystemExit(f"the host exited:\n{log}")
            time.sleep(1)
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(limit=200) if r.parameters.get("job_id") in ids]
    return [(r.start_time - r.created).total_seconds() for r in runs if r.start_time]


def delete_pools() -> None:
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(limit=200):
            client.delete_flow_run(run.id)
        for pool in (REGISTRE_POOL, OCR_POOL, CONTROL_POOL):
            client.delete_work_pool(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="run-start-") as tmp, engine(Path(tmp)):
        image, cold_s, cached_s = timed_build()
        size = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        with Stack(Path(tmp)) as stack:
            stack.deploy()
            stack.start_host("bench", **HOST_ENV)
            process = start_costs(stack, args.documents)
            stack.stop_hosts()
            delete_pools()
            stack.deploy_docker(image, **HOST_ENV)
            stack.start_host("bench", **HOST_ENV)
            container = start_costs(stack, args.documents)
    print(f"image {image}: {int(size) / 1e9:.2f} GB; build {cold_s:.0f} s (0 if it was there),"
          f" again with nothing changed {cached_s:.1f} s")  # fmt: skip
    print(f"created -> Running, {args.documents} actes (registre and OCR runs each):")
    for name, values in (("process", process), ("container", container)):
        print(f"  {name:10} median {statistics.median(values):5.1f} s, max {max(values):5.1f} s"
              f" ({len(values)} runs)")  # fmt: skip
    ratio = statistics.median(container) / statistics.median(process)
    print(f"  container / process: {ratio:.2f}x")


if __name__ == "__main__":
    main()
