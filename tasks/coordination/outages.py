"""How a loop that runs every few seconds (the dispatcher, a heartbeat) reports a service that
stays down: once when it goes, with what to check; again every REPEAT_S while it stays down; once
when it answers again. Never a line, let alone a traceback, per tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from prefect.settings import PREFECT_API_URL

REPEAT_S = 60.0  # while a service stays down, said again this often


@dataclass(frozen=True)
class Service:
    name: str  # what is down, where: "Redis at 127.0.0.1:6379/0"
    check: str  # what the operator checks


def redis_service(client: redis.Redis) -> Service:
    where = client.connection_pool.connection_kwargs  # no password in what is shown
    at = where.get("path") or f"{where.get('host')}:{where.get('port')}/{where.get('db', 0)}"
    return Service(f"Redis at {at}", "check REDIS_URL and that Redis runs")


def prefect_service() -> Service:
    api = PREFECT_API_URL.value() or "(PREFECT_API_URL not set)"
    return Service(f"the Prefect API at {api}", "check PREFECT_API_URL and that the server runs")


SUPABASE = Service(
    "Supabase", "check the environment's <ENV>_SUPABASE_URL and <ENV>_SUPABASE_SERVICE_KEY"
)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _brief(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass
class _Down:
    since: float
    said: float
    failures: int = 1


class Outages:
    """One loop's view of the services it calls. `failed` after a failed tick, `answered`
    after a good one."""

    def __init__(
        self,
        loop: str,
        log: logging.Logger,
        repeat_s: float = REPEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loop = loop
        self.log = log
        self.repeat_s = repeat_s
        self.clock = clock
        self.down: dict[Service, _Down] = {}

    def failed(self, exc: BaseException, service: Service | None) -> None:
        """A tick failed on `service` (None: an unexpected error, whose first occurrence is
        logged with its traceback, to be fixed)."""
        now = self.clock()
        key = service or Service(type(exc).__name__, "an unexpected error: see its first report")
        down = self.down.get(key)
        if down is None:
            self.down[key] = _Down(since=now, said=now)
            if service is None:
                self.log.error("%s failed; retrying, reported again every %s while it lasts",
                               self.loop, _duration(self.repeat_s), exc_info=exc)  # fmt: skip
            else:
                self.log.error(
                    "%s: %s does not answer (%s); %s. Retrying, reported again every %s while"
                    " it lasts",
                    self.loop, key.name, _brief(exc), key.check, _duration(self.repeat_s),
                )  # fmt: skip
            return
        down.failures += 1
        if now - down.said >= self.repeat_s:
            down.said = now
            self.log.error("%s: %s still failing after %s (%d attempts, last: %s); %s",
                           self.loop, key.name, _duration(now - down.since), down.failures,
                           _brief(exc), key.check)  # fmt: skip

    def answered(self) -> None:
        """A tick went through: whatever was down is back."""
        now = self.clock()
        for service, down in self.down.items():
            self.log.warning("%s: %s answers again, after %s down", self.loop, service.name,
                             _duration(now - down.since))  # fmt: skip
        self.down.clear()
