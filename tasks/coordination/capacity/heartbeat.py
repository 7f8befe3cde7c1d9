"""The background thread that repeats a tick (renew a lease, refresh a host's budget) while a
block runs, and says once, not at every beat, when Redis is down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from tasks.coordination.outages import Outages, redis_service

__all__ = ["every"]

logger = logging.getLogger(__name__)


@contextmanager
def every(interval_s: float, tick: Callable[[], None], client: redis.Redis) -> Iterator[None]:
    """Call `tick` every `interval_s` in a daemon thread until the block ends."""
    stop = threading.Event()
    # Redis down is said once with what to check, then once a minute, not at every beat
    outages, service = Outages("capacity heartbeat", logger), redis_service(client)

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                tick()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                outages.failed(exc, service)
            except redis.RedisError as exc:
                outages.failed(exc, None)
            else:
                outages.answered()

    thread = threading.Thread(target=loop, name="capacity-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
