"""The arguments `registre worker` gives each of its Prefect workers, of either kind
(deployments/prefect_worker.py, deployments/docker_worker.py), and the worker options they make;
a module of its own so that neither worker imports the other's class (Prefect registers a
worker class by its type on import)."""

from __future__ import annotations

import argparse
from typing import Any

from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS


def worker_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments `registre worker` gives each of its Prefect workers, of either kind."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--name", required=True)
    return parser


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Prefect worker's own options from them: a pool `registre deploy` made, never one the
    worker would create."""
    return {
        "work_pool_name": args.pool,
        "name": args.name,
        "limit": args.limit,
        "heartbeat_interval_seconds": int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
        "create_pool_if_not_found": False,
    }
