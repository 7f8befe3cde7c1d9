from __future__ import annotations

import json
import logging
import math
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

import redis

from tasks.outages import Outages, redis_service
from tasks.settings import Settings

__all__ = [
    "Budget",
    "CapacityExceeded",
    "CapacityManager",
    "CapacityPlan",
    "Cost",
    "Lease",
    "WorkerKind",
    "cost_table",
    "host_budget",
    "plan_capacity",
]

logger = logging.getLogger(__name__)

_EPSILON = 1e-9  # float sums of costs such as 0.1 must not refuse an exact fit


class WorkerKind(StrEnum):
    REGISTRE = "registre"
    INDEX_OCR = "index-ocr"
    ACTE_OCR = "acte-ocr"


@dataclass(frozen=True)
class Cost:
    cpu: float  # vCPU
    ram: float  # GB

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.cpu + other.cpu, self.ram + other.ram)

    def __mul__(self, n: float) -> Cost:
        return Cost(self.cpu * n, self.ram * n)

    def fits(self, budget: Budget) -> bool:
        return self.cpu <= budget.cpu + _EPSILON and self.ram <= budget.ram + _EPSILON


Budget = Cost  # what a host may spend: max minus its reserve

DEFAULT_COSTS = {
    WorkerKind.REGISTRE: Cost(3, 1),
    WorkerKind.INDEX_OCR: Cost(1.5, 0.75),
    WorkerKind.ACTE_OCR: Cost(1, 0.5),
}


def cost_table(settings: Settings) -> dict[WorkerKind, Cost]:
    return {
        WorkerKind.REGISTRE: Cost(settings.cost_registre_cpu, settings.cost_registre_ram),
        WorkerKind.INDEX_OCR: Cost(settings.cost_index_ocr_cpu, settings.cost_index_ocr_ram),
        WorkerKind.ACTE_OCR: Cost(settings.cost_acte_ocr_cpu, settings.cost_acte_ocr_ram),
    }


def host_budget(
    max_cpu: float, max_ram: float, reserve_cpu_percent: float, reserve_ram_percent: float
) -> Budget:
    return Budget(
        max_cpu - max_cpu * reserve_cpu_percent / 100,
        max_ram - max_ram * reserve_ram_percent / 100,
    )


def settings_budget(settings: Settings) -> Budget:
    return host_budget(
        settings.server_max_cpu,
        settings.server_max_ram,
        settings.server_reserve_cpu_percent,
        settings.server_reserve_ram_percent,
    )


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    budget: Budget
    registre: int
    ocr: int
    need: Cost
    fits: bool
    max_registre: int  # with the requested OCR workers
    max_ocr: int  # with the requested registre workers
    max_registre_alone: int
    max_ocr_alone: int

    @property
    def cpu_percent(self) -> float:
        return 100 * self.need.cpu / self.budget.cpu if self.budget.cpu else math.inf

    @property
    def ram_percent(self) -> float:
        return 100 * self.need.ram / self.budget.ram if self.budget.ram else math.inf


def max_count(per_worker: Cost, room: Cost) -> int:
    if room.cpu < -_EPSILON or room.ram < -_EPSILON:
        return 0
    counts = [
        math.floor((have + _EPSILON) / each)
        for have, each in ((room.cpu, per_worker.cpu), (room.ram, per_worker.ram))
        if each > 0
    ]
    return min(counts) if counts else 0  # a free worker kind has no capacity bound


def plan_capacity(
    budget: Budget, costs: dict[WorkerKind, Cost], *, registre: int, ocr: int
) -> CapacityPlan:
    """What `registre` registry workers and `ocr` OCR workers need from a budget.

    OCR workers count as an even index/acte mix (the average of the two costs), as the seed did.
    """
    ocr_each = (costs[WorkerKind.INDEX_OCR] + costs[WorkerKind.ACTE_OCR]) * 0.5
    registre_each = costs[WorkerKind.REGISTRE]
    need = registre_each * registre + ocr_each * ocr
    return CapacityPlan(
        budget=budget,
        registre=registre,
        ocr=ocr,
        need=need,
        fits=need.fits(budget),
        max_registre=max_count(registre_each, budget + ocr_each * -ocr),
        max_ocr=max_count(ocr_each, budget + registre_each * -registre),
        max_registre_alone=max_count(registre_each, budget),
        max_ocr_alone=max_count(ocr_each, budget),
    )


class CapacityExceeded(Exception):
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


# Shared by every script: drop expired hosts and leases, then rewrite the operator keys from the
# live leases, so the totals can never drift from what is held. They expire with the last lease,
# so they read 0 (absent) once everything has expired even if no process sweeps again.
# KEYS[1] = hosts (zset host -> expires at ms)      KEYS[2] = host budgets (hash host -> json)
# KEYS[3] = leases (zset lease -> expires at ms)    KEYS[4] = workers (hash lease -> json)
# KEYS[5] = cpu allocated                           KEYS[6] = ram allocated
_SWEEP_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%.0f', now)

local function sweep(zset, hash)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', now_s)
  if #gone > 0 then
    redis.call('HDEL', hash, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', now_s)
  end
end

local function totals(hash, host)
  local cpu, ram, host_cpu, host_ram = 0, 0, 0, 0
  for _, raw in ipairs(redis.call('HVALS', hash)) do
    local w = cjson.decode(raw)
    cpu = cpu + w.cpu
    ram = ram + w.ram
    if w.host == host then
      host_cpu = host_cpu + w.cpu
      host_ram = host_ram + w.ram
    end
  end
  return cpu, ram, host_cpu, host_ram
end

local function amount(x)
  local s = string.format('%.4f', math.max(0, x)):gsub('0+$', ''):gsub('%.$', '')
  return s
end

local function publish(cpu, ram)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('SET', KEYS[5], '0')
    redis.call('SET', KEYS[6], '0')
    return
  end
  redis.call('SET', KEYS[5], amount(cpu))
  redis.call('SET', KEYS[6], amount(ram))
  for _, key in ipairs({KEYS[3], KEYS[4], KEYS[5], KEYS[6]}) do
    redis.call('PEXPIREAT', key, last[2])
  end
end

sweep(KEYS[1], KEYS[2])
sweep(KEYS[3], KEYS[4])
"""

# Check and take in one step, so concurrent runs cannot both see the same free capacity.
# KEYS: as _SWEEP_LUA
# ARGV[1] = lease id, ARGV[2] = json of the lease record (cpu, ram, host, ...),
# ARGV[3] = lease ms, ARGV[4] = host id ('' to check only the global budget)
# Returns {1, expires at ms} or {0, reason ('no_host'|'host'|'global'), cpu short, ram short}.
_RESERVE_SCRIPT = (
    _SWEEP_LUA
    + """
local record = cjson.decode(ARGV[2])
local budget_cpu, budget_ram, host_cpu_max, host_ram_max = 0, 0, nil, nil
for i, raw in ipairs(redis.call('HGETALL', KEYS[2])) do
  if i % 2 == 0 then
    local b = cjson.decode(raw)
    budget_cpu = budget_cpu + b.cpu
    budget_ram = budget_ram + b.ram
  end
end
if ARGV[4] ~= '' then
  local raw = redis.call('HGET', KEYS[2], ARGV[4])
  if not raw then return {0, 'no_host', '0', '0'} end
  local b = cjson.decode(raw)
  host_cpu_max, host_ram_max = b.cpu, b.ram
elseif budget_cpu == 0 and budget_ram == 0 and redis.call('ZCARD', KEYS[1]) == 0 then
  return {0, 'no_host', '0', '0'}
end

local cpu, ram, host_cpu, host_ram = totals(KEYS[4], ARGV[4])
local eps = 1e-9
local function short(used, max) return math.max(0, used - max) end
if host_cpu_max then
  local c = short(host_cpu + record.cpu, host_cpu_max + eps)
  local r = short(host_ram + record.ram, host_ram_max + eps)
  if c > 0 or r > 0 then
    return {0, 'host', amount(c), amount(r)}
  end
end
local c = short(cpu + record.cpu, budget_cpu + eps)
local r = short(ram + record.ram, budget_ram + eps)
if c > 0 or r > 0 then
  return {0, 'global', amount(c), amount(r)}
end

local expires = string.format('%.0f', now + tonumber(ARGV[3]))
redis.call('ZADD', KEYS[3], expires, ARGV[1])
record.startedAt = math.floor(now / 1000)
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode(record))
publish(cpu + record.cpu, ram + record.ram)
return {1, expires}
"""
)

# A lease found gone is put back: the run renewing it is alive and its cost is real (it expired
# while the run was stalled, or Redis lost its data). The row it works on is guarded by the
# queue's own lease, not by this one.
# KEYS: as _SWEEP_LUA; ARGV[1] = lease id, ARGV[2] = lease ms, ARGV[3] = json of the lease record
# Returns 1 if the lease was held, 0 if it had to be put back.
_RENEW_SCRIPT = (
    _SWEEP_LUA
    + """
local held = 1
redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then
  held = 0
  local record = cjson.decode(ARGV[3])
  record.startedAt = math.floor(now / 1000)
  redis.call('HSET', KEYS[4], ARGV[1], cjson.encode(record))
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return held
"""
)

# KEYS: as _SWEEP_LUA; ARGV[1] = lease id ('' only sweeps). Returns 1 if the lease was held.
_RELEASE_SCRIPT = (
    _SWEEP_LUA
    + """
local held = 0
if ARGV[1] ~= '' then
  held = redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return held
"""
)

# KEYS: as _SWEEP_LUA; ARGV[1] = host id, ARGV[2] = budget json ('' to unregister), ARGV[3] = ttl ms
_HOST_SCRIPT = (
    _SWEEP_LUA
    + """
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local cpu, ram = totals(KEYS[4], '')
publish(cpu, ram)
return 1
"""
)


@dataclass(frozen=True, kw_only=True)
class Lease:
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
        self.keys = [
            f"{prefix}server:hosts",
            f"{prefix}server:hosts:budget",
            f"{prefix}server:leases",
            f"{prefix}server:workers",
            f"{prefix}server:cpu:allocated",
            f"{prefix}server:ram:allocated",
        ]
        self._reserve = client.register_script(_RESERVE_SCRIPT)
        self._renew = client.register_script(_RENEW_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._host = client.register_script(_HOST_SCRIPT)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: redis.Redis | None = None
    ) -> CapacityManager:
        return cls(
            client or redis.Redis.from_url(settings.redis_url),
            costs=cost_table(settings),
            prefix=settings.redis_key_prefix,
            lease_s=settings.capacity_lease_seconds,
            host_ttl_s=settings.capacity_host_ttl_seconds,
        )

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
        self._host(keys=self.keys, args=[host_id, record, _ms(self.host_ttl_s)])

    def unregister_host(self, host_id: str) -> None:
        self._host(keys=self.keys, args=[host_id, "", 0])

    def reserve(
        self, kind: WorkerKind, *, worker_id: str | None = None, host_id: str = ""
    ) -> Lease:
        """Take a run's cost as a lease, or raise CapacityExceeded saying what is short.

        With a host_id the run must also fit that host's own budget.
        """
        kind = WorkerKind(kind)
        lease_id = worker_id or uuid.uuid4().hex
        cost = self.costs[kind]
        args = [lease_id, _lease_record(lease_id, kind, cost, host_id), _ms(self.lease_s), host_id]
        answer = self._reserve(keys=self.keys, args=args)
        if answer[0] != 1:
            reason = answer[1].decode() if isinstance(answer[1], bytes) else answer[1]
            raise CapacityExceeded(kind, reason, float(answer[2]), float(answer[3]), host_id)
        return Lease(
            lease_id=lease_id, kind=kind, cost=cost, host_id=host_id, expires_at_ms=int(answer[1])
        )

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by lease_s; False if it was gone (expired, or Redis lost it) and
        had to be put back."""
        record = _lease_record(lease.lease_id, lease.kind, lease.cost, lease.host_id)
        args = [lease.lease_id, _ms(self.lease_s), record]
        return int(self._renew(keys=self.keys, args=args)) == 1

    def release(self, lease: Lease) -> bool:
        """Give the capacity back; False if the lease had already expired."""
        return self.release_id(lease.lease_id)

    def release_id(self, lease_id: str) -> bool:
        """`release` for a lease known by its id (a dead run's, from its hooks)."""
        return int(self._release(keys=self.keys, args=[lease_id])) == 1

    def status(self) -> CapacityStatus:
        """Sweep expired hosts and leases, then read the live state."""
        self._release(keys=self.keys, args=[""])
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys[1])
        pipe.hvals(self.keys[3])
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
    ) -> Iterator[Lease]:
        """Reserve, renew in the background while the block runs, release at the end."""
        lease = self.reserve(kind, worker_id=worker_id, host_id=host_id)
        with _every(self.lease_s / 3, lambda: self._renew_or_warn(lease), self.client):
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
        with _every(self.host_ttl_s / 3, beat, self.client):
            try:
                yield host
            finally:
                self.unregister_host(host)

    def _renew_or_warn(self, lease: Lease) -> None:
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


@contextmanager
def _every(interval_s: float, tick: Callable[[], None], client: redis.Redis) -> Iterator[None]:
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


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
