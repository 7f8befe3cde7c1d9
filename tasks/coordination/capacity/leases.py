"""Run-time capacity reservations in Redis: each live host registers its budget, and each run
holds a lease on its cost while it works, so that every process on every host shares one view
of what is free. The checks and writes are the Lua scripts tasks/coordination/lua/capacity_*.lua."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import redis

from tasks.coordination.capacity.budget import DEFAULT_COSTS, Budget, Cost, WorkerKind
from tasks.coordination.capacity.heartbeat import every
from tasks.coordination.lua import read_script
from tasks.coordination.redis_keys import RedisKeys
from tasks.failures import RetryLater

__all__ = ["CapacityExceeded", "CapacityLease", "CapacityManager", "CapacityStatus"]

logger = logging.getLogger(__name__)


class CapacityExceeded(RetryLater):
    """The budget has no room for this run; retry when a run ends."""

    def __init__(
        self, kind: WorkerKind, reason: str, cpu_short: float, ram_short: float, host_id: str = ""
    ) -> None:
        self.kind = kind
        self.host_id = host_id
        self.reason = reason
        self.cpu_short = cpu_short
        self.ram_short = ram_short
        if reason == "no_host" and host_id:
            message = f"host {host_id!r} has no live budget registered (no heartbeat)"
        elif reason == "no_host":
            message = f"no live host has registered a budget for {kind.value}"
        else:
            short = []
            if cpu_short > 0:
                short.append(f"CPU short by {cpu_short:g} vCPU")
            if ram_short > 0:
                short.append(f"RAM short by {ram_short:g} GB")
            where = f"host {host_id!r}" if reason == "host" else "all hosts"
            message = f"no capacity for {kind.value} on {where}: " + ", ".join(short)
        super().__init__(message)


def _capacity_script(name: str) -> str:
    """Every capacity script starts with capacity_sweep.lua: it sweeps expired hosts and leases
    and defines the helpers the script uses."""
    return read_script("capacity_sweep") + read_script(name)


@dataclass(frozen=True, kw_only=True)
class CapacityLease:
    lease_id: str
    kind: WorkerKind
    cost: Cost
    host_id: str
    expires_at_ms: int  # Redis's clock, at reservation


@dataclass(frozen=True, kw_only=True)
class CapacityStatus:
    budget: Budget  # the sum over live hosts
    allocated: Cost
    hosts: dict[str, Budget]
    runs: dict[str, dict[str, int]]  # per host, the runs of each pool it offers
    notes: dict[str, list[str]]  # per host, why it offers less than configured
    workers: list[dict[str, object]]  # the `server:workers` records


class CapacityManager:
    """Run-time reservations of the cost table against the budgets of the live hosts."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        costs: dict[WorkerKind, Cost] | None = None,
        prefix: str = "",
        lease_s: float = 60.0,
        host_ttl_s: float = 30.0,
    ) -> None:
        self.client = client
        self.costs = dict(DEFAULT_COSTS if costs is None else costs)
        self.lease_s = lease_s
        self.host_ttl_s = host_ttl_s
        self._keys = k = RedisKeys(prefix)
        # KEYS[1..6] of every capacity script, in this order (see capacity_sweep.lua)
        self._script_keys = [
            k.capacity_hosts,
            k.capacity_budgets,
            k.capacity_leases,
            k.capacity_workers,
            k.capacity_cpu_allocated,
            k.capacity_ram_allocated,
        ]
        self._reserve = client.register_script(_capacity_script("capacity_reserve"))
        self._renew = client.register_script(_capacity_script("capacity_renew"))
        self._release = client.register_script(_capacity_script("capacity_release"))
        self._host = client.register_script(_capacity_script("capacity_host"))

    def register_host(
        self,
        host_id: str,
        budget: Budget,
        runs: dict[str, int] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        """Add or refresh a host's budget, the runs of each pool it offers (its workers'
        limits) and why it offers less; it expires after host_ttl_s without a refresh."""
        record = {"cpu": budget.cpu, "ram": budget.ram, "runs": runs or {}, "notes": notes or []}
        record = json.dumps(record)
        self._host(keys=self._script_keys, args=[host_id, record, _ms(self.host_ttl_s)])

    def unregister_host(self, host_id: str) -> None:
        self._host(keys=self._script_keys, args=[host_id, "", 0])

    def reserve(
        self, kind: WorkerKind, *, worker_id: str | None = None, host_id: str = ""
    ) -> CapacityLease:
        """Take a run's cost as a lease, or raise CapacityExceeded saying what is short.

        With a host_id the run must also fit that host's own budget.
        """
        kind = WorkerKind(kind)
        lease_id = worker_id or uuid.uuid4().hex
        cost = self.costs[kind]
        args = [lease_id, _lease_record(lease_id, kind, cost, host_id), _ms(self.lease_s), host_id]
        answer = self._reserve(keys=self._script_keys, args=args)
        if answer[0] != 1:
            reason = answer[1].decode() if isinstance(answer[1], bytes) else answer[1]
            raise CapacityExceeded(kind, reason, float(answer[2]), float(answer[3]), host_id)
        return CapacityLease(
            lease_id=lease_id, kind=kind, cost=cost, host_id=host_id, expires_at_ms=int(answer[1])
        )

    def renew(self, lease: CapacityLease) -> bool:
        """Extend the lease by lease_s; False if it was gone (expired, or Redis lost it) and
        had to be put back."""
        record = _lease_record(lease.lease_id, lease.kind, lease.cost, lease.host_id)
        args = [lease.lease_id, _ms(self.lease_s), record]
        return int(self._renew(keys=self._script_keys, args=args)) == 1

    def release(self, lease: CapacityLease) -> bool:
        """Give the capacity back; False if the lease had already expired."""
        return self.release_id(lease.lease_id)

    def release_id(self, lease_id: str) -> bool:
        """`release` for a lease known by its id (a dead run's, from its hooks)."""
        return int(self._release(keys=self._script_keys, args=[lease_id])) == 1

    def status(self) -> CapacityStatus:
        """Sweep expired hosts and leases, then read the live state."""
        self._release(keys=self._script_keys, args=[""])
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self._keys.capacity_budgets)
        pipe.hvals(self._keys.capacity_workers)
        raw_hosts, raw_workers = pipe.execute()
        records = {host.decode(): json.loads(raw) for host, raw in sorted(raw_hosts.items())}
        hosts = {host: Budget(r["cpu"], r["ram"]) for host, r in records.items()}
        workers = sorted(
            (json.loads(raw) for raw in raw_workers), key=lambda w: (w["startedAt"], w["workerId"])
        )
        return CapacityStatus(
            budget=sum(hosts.values(), Budget(0, 0)),
            allocated=Cost(sum(w["cpu"] for w in workers), sum(w["ram"] for w in workers)),
            hosts=hosts,
            runs={host: r.get("runs", {}) for host, r in records.items()},
            notes={host: r.get("notes", []) for host, r in records.items()},
            workers=workers,
        )

    @contextmanager
    def hold(
        self, kind: WorkerKind, *, worker_id: str | None = None, host_id: str = ""
    ) -> Iterator[CapacityLease]:
        """Reserve, renew in the background while the block runs, release at the end."""
        lease = self.reserve(kind, worker_id=worker_id, host_id=host_id)
        with every(self.lease_s / 3, lambda: self._renew_or_warn(lease), self.client):
            try:
                yield lease
            finally:
                self.release(lease)

    @contextmanager
    def host_registered(
        self,
        host_id: str | None,
        budget: Budget,
        runs: dict[str, int] | None = None,
        notes: list[str] | None = None,
    ) -> Iterator[str]:
        """Keep this host's budget registered (heartbeat) while the block runs; `runs` may be
        changed in place meanwhile (a host that drains offers nothing)."""
        host = host_id or socket.gethostname()
        self.register_host(host, budget, runs, notes)
        beat = partial(self.register_host, host, budget, runs, notes)
        with every(self.host_ttl_s / 3, beat, self.client):
            try:
                yield host
            finally:
                self.unregister_host(host)

    def _renew_or_warn(self, lease: CapacityLease) -> None:
        if not self.renew(lease):
            logger.warning(
                "capacity lease %s was gone at renewal (expired, or Redis lost its data); put back",
                lease.lease_id,
                extra={"action": "capacity_lease_restored", "kind": lease.kind.value},
            )


def _lease_record(lease_id: str, kind: WorkerKind, cost: Cost, host_id: str) -> str:
    record = {"workerId": lease_id, "type": kind.value, "cpu": cost.cpu, "ram": cost.ram,
              "host": host_id}  # fmt: skip
    return json.dumps(record)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
