from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time

import pytest
import redis

from tasks.coordination.capacity.budget import (
    DEFAULT_COSTS,
    Budget,
    Cost,
    WorkerKind,
    host_budget,
    plan_capacity,
)
from tasks.coordination.capacity.leases import CapacityExceeded, CapacityManager
from tasks.coordination.redis_keys import RedisKeys

from .conftest import TEST_REDIS_URL

SEED_HOST = host_budget(8, 16, 20, 20)  # DOMAIN.md §4.1's worked example: 6.4 vCPU / 12.8 GB
fork = multiprocessing.get_context("fork")


def test_budget_is_max_minus_the_reserve():
    assert Budget(pytest.approx(6.4), pytest.approx(12.8)) == SEED_HOST
    assert host_budget(4, 8, 0, 50) == Budget(4, 4)


@pytest.mark.parametrize(
    ("registre", "ocr", "fits", "cpu_percent"),
    [
        (1, 2, True, 86),  # 1 registre + 1 index + 1 acte = 5.5 vCPU
        (2, 2, False, 133),  # a second registre makes 8.5 > 6.4
        (0, 5, True, 98),  # 5 OCR at the average = 6.25: fits, just
        (0, 6, False, 117),
    ],
)
def test_plan_matches_the_seed_worked_example(registre, ocr, fits, cpu_percent):
    plan = plan_capacity(SEED_HOST, DEFAULT_COSTS, registre=registre, ocr=ocr)
    assert plan.fits is fits
    assert round(plan.cpu_percent) == cpu_percent


def test_plan_reports_the_largest_counts_that_fit():
    plan = plan_capacity(SEED_HOST, DEFAULT_COSTS, registre=1, ocr=2)
    assert (plan.max_registre, plan.max_ocr) == (1, 2)
    assert (plan.max_registre_alone, plan.max_ocr_alone) == (2, 5)


def test_ram_can_be_the_binding_resource():
    plan = plan_capacity(Budget(64, 2), DEFAULT_COSTS, registre=1, ocr=2)
    assert not plan.fits
    assert plan.max_registre_alone == 2 and plan.max_ocr_alone == 3


@pytest.fixture
def manager(redis_client, redis_prefix) -> CapacityManager:
    return CapacityManager(redis_client, prefix=redis_prefix, lease_s=30)


def test_reserve_keeps_the_operator_keys_true(manager, redis_client, keys):
    manager.register_host("h1", SEED_HOST)
    a = manager.reserve(WorkerKind.REGISTRE, worker_id="run-a", host_id="h1")
    manager.reserve(WorkerKind.INDEX_OCR, worker_id="run-b")
    cpu, ram = redis_client.mget(keys.capacity_cpu_allocated, keys.capacity_ram_allocated)
    assert (float(cpu), float(ram)) == (4.5, 1.75)
    workers = {
        k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.capacity_workers).items()
    }
    assert set(workers) == {"run-a", "run-b"}
    assert workers["run-a"] | {"startedAt": 0} == {
        "workerId": "run-a",
        "type": "registre",
        "cpu": 3,
        "ram": 1,
        "host": "h1",
        "startedAt": 0,
    }
    assert manager.release(a)
    assert float(redis_client.get(keys.capacity_cpu_allocated)) == 1.5
    assert not manager.release(a)


def test_a_refusal_says_which_resource_is_short_and_by_how_much(manager):
    manager.register_host("h1", SEED_HOST)
    manager.reserve(WorkerKind.REGISTRE)
    manager.reserve(WorkerKind.INDEX_OCR)
    manager.reserve(WorkerKind.ACTE_OCR)  # 5.5 of 6.4 vCPU: a second registre makes 8.5
    with pytest.raises(CapacityExceeded) as refused:
        manager.reserve(WorkerKind.REGISTRE)
    assert refused.value.cpu_short == pytest.approx(2.1)
    assert refused.value.ram_short == 0
    assert "CPU short by 2.1 vCPU" in str(refused.value)


def test_ram_shortfall_is_reported(redis_client, redis_prefix):
    manager = CapacityManager(redis_client, prefix=redis_prefix)
    manager.register_host("h1", Budget(64, 1.5))
    manager.reserve(WorkerKind.REGISTRE)
    with pytest.raises(CapacityExceeded) as refused:
        manager.reserve(WorkerKind.INDEX_OCR)
    assert (refused.value.cpu_short, refused.value.ram_short) == (0, pytest.approx(0.25))


def test_without_a_live_host_nothing_is_reserved(manager):
    with pytest.raises(CapacityExceeded, match="no live host"):
        manager.reserve(WorkerKind.ACTE_OCR)
    manager.register_host("h1", SEED_HOST)
    with pytest.raises(CapacityExceeded, match="'h2' has no live budget"):
        manager.reserve(WorkerKind.ACTE_OCR, host_id="h2")


def test_the_global_budget_is_the_sum_over_live_hosts(manager):
    manager.register_host("h1", Budget(4, 8))
    manager.register_host("h2", Budget(4, 8))
    manager.reserve(WorkerKind.REGISTRE, host_id="h1")
    with pytest.raises(CapacityExceeded, match="host 'h1': CPU short by 2"):
        manager.reserve(WorkerKind.REGISTRE, host_id="h1")
    manager.reserve(WorkerKind.REGISTRE, host_id="h2")
    manager.unregister_host("h2")
    with pytest.raises(CapacityExceeded, match="all hosts: CPU short by 3 vCPU"):
        manager.reserve(WorkerKind.ACTE_OCR)
    assert manager.status().budget == Budget(4, 8)


def test_an_expired_lease_frees_its_capacity(manager, redis_client, keys):
    """Seed a lease that expired a second ago: the next call drops it and its capacity."""
    manager.register_host("h1", Budget(3, 1))
    redis_client.zadd(keys.capacity_leases, {"dead": redis_client.time()[0] * 1000 - 1000})
    redis_client.hset(
        keys.capacity_workers,
        "dead",
        json.dumps({"workerId": "dead", "type": "registre", "cpu": 3, "ram": 1, "host": ""}),
    )
    redis_client.set(keys.capacity_cpu_allocated, "3")
    manager.reserve(WorkerKind.REGISTRE, worker_id="alive")
    assert redis_client.hkeys(keys.capacity_workers) == [b"alive"]
    assert redis_client.get(keys.capacity_cpu_allocated) == b"3"


def test_an_expired_host_no_longer_counts(manager, redis_client, keys):
    manager.register_host("h1", SEED_HOST)
    redis_client.zadd(keys.capacity_hosts, {"h1": 1})
    with pytest.raises(CapacityExceeded, match="no live host"):
        manager.reserve(WorkerKind.ACTE_OCR)


def test_a_lease_gone_at_renewal_is_put_back_as_its_run_is_alive(
    manager, redis_client, redis_prefix, keys
):
    manager.register_host("h1", SEED_HOST)
    lease = manager.reserve(WorkerKind.ACTE_OCR, host_id="h1")
    assert manager.renew(lease)
    redis_client.zadd(keys.capacity_leases, {lease.lease_id: 1})  # expired meanwhile
    assert manager.status().allocated == Cost(0, 0)
    assert not manager.renew(lease)
    assert manager.status().allocated == lease.cost

    redis_client.delete(*redis_client.keys(f"{redis_prefix}*"))  # Redis lost its data
    assert not manager.renew(lease)
    (record,) = manager.status().workers
    assert (record["workerId"], record["host"]) == (lease.lease_id, "h1")
    assert record["type"] == WorkerKind.ACTE_OCR.value
    assert manager.renew(lease)


def test_hold_releases_when_the_block_ends(manager):
    manager.register_host("h1", SEED_HOST)
    with manager.hold(WorkerKind.REGISTRE) as lease:
        assert [w["workerId"] for w in manager.status().workers] == [lease.lease_id]
    assert manager.status().workers == []


def _reserve_until_full(prefix: str, start: threading.Barrier, results) -> None:
    manager = CapacityManager(redis.Redis.from_url(TEST_REDIS_URL), prefix=prefix)
    start.wait()
    granted, refused = 0, 0
    for i in range(400):
        kind = (WorkerKind.ACTE_OCR, WorkerKind.INDEX_OCR, WorkerKind.REGISTRE)[i % 3]
        try:
            lease = manager.reserve(kind)
        except CapacityExceeded:
            refused += 1
            continue
        granted += 1
        if i % 2:  # churn: give half back at once, keep the rest
            manager.release(lease)
    results.put((granted, refused))


def _watch_allocated(client: redis.Redis, prefix: str, stop: threading.Event, seen: list[float]):
    while not stop.is_set():
        keys = RedisKeys(prefix)
        cpu, ram = client.mget(keys.capacity_cpu_allocated, keys.capacity_ram_allocated)
        seen.append((float(cpu or 0), float(ram or 0)))


def test_two_processes_reserving_concurrently_never_exceed_the_budget(manager, redis_prefix):
    budget = Budget(6.4, 3)
    manager.register_host("h1", budget)
    start, results = fork.Barrier(2), fork.Queue()
    seen: list[tuple[float, float]] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_allocated,
        args=(redis.Redis.from_url(TEST_REDIS_URL), redis_prefix, stop, seen),
    )
    watcher.start()
    procs = [
        fork.Process(target=_reserve_until_full, args=(redis_prefix, start, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    stop.set()
    watcher.join()
    assert all(refused > 0 for _, refused in outcomes), "the budget was never contended"
    assert max(cpu for cpu, _ in seen) <= budget.cpu
    assert max(ram for _, ram in seen) <= budget.ram
    final = manager.status()
    assert final.allocated.fits(budget)
    # what is held at the end fills the budget: no third acte-ocr (1 vCPU, 0.5 GB) fits
    assert not (final.allocated + Cost(1, 0.5)).fits(budget)


def _hold_forever(prefix: str, ready) -> None:
    manager = CapacityManager(redis.Redis.from_url(TEST_REDIS_URL), prefix=prefix, lease_s=1)
    with manager.hold(WorkerKind.REGISTRE, worker_id="doomed"):
        ready.set()
        time.sleep(120)


def test_a_killed_process_reservation_expires(manager, redis_prefix):
    manager.register_host("h1", SEED_HOST)
    ready = fork.Event()
    proc = fork.Process(target=_hold_forever, args=(redis_prefix, ready))
    proc.start()
    assert ready.wait(30)
    time.sleep(1.5)  # longer than the 1 s lease: only renewal keeps it
    assert [w["workerId"] for w in manager.status().workers] == ["doomed"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    deadline = time.monotonic() + 10
    while manager.status().workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.status().workers == []
    assert manager.status().allocated == Cost(0, 0)
    manager.reserve(WorkerKind.REGISTRE)
