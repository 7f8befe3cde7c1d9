"""A flow that only waits: test_recycle.py deploys it to a pool of its own."""

from __future__ import annotations

import time

from prefect import flow


@flow
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
