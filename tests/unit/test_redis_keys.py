from __future__ import annotations

from importlib.resources import files

import pytest

from tasks.coordination.lua import read_script
from tasks.coordination.redis_keys import RedisKeys


def test_the_keys_operators_know_keep_their_names():
    """docs/operations.md and docs/capacity.md name these keys; running hosts share them."""
    keys = RedisKeys("p:")
    assert [
        keys.capacity_hosts,
        keys.capacity_budgets,
        keys.capacity_leases,
        keys.capacity_workers,
        keys.capacity_cpu_allocated,
        keys.capacity_ram_allocated,
        keys.gemini_log,
        keys.gemini_rpm,
        keys.gemini_tpm,
        keys.gemini_paused,
        keys.gemini_epoch,
        keys.pool_limits,
        keys.pool_allocation,
        keys.dispatch_lock,
        keys.dispatch_again,
        keys.rebalance_reported,
        keys.run_stopped("r1"),
        keys.run_unleased("r1"),
        keys.registre_session("a1"),
        keys.registre_sessions,
    ] == [
        "p:server:hosts",
        "p:server:hosts:budget",
        "p:server:leases",
        "p:server:workers",
        "p:server:cpu:allocated",
        "p:server:ram:allocated",
        "p:gemini:log",
        "p:gemini:rpm:current",
        "p:gemini:tpm:current",
        "p:gemini:paused",
        "p:gemini:epoch",
        "p:worker_pool:limits",
        "p:worker_pool:allocation",
        "p:dispatch:lock",
        "p:dispatch:again",
        "p:rebalance:reported",
        "p:run:stopped:r1",
        "p:run:unleased:r1",
        "p:registre:session:a1",
        "p:registre:sessions",
    ]


def test_no_prefix_is_the_default():
    assert RedisKeys().pool_allocation == "worker_pool:allocation"


SCRIPTS = sorted(p.name.removesuffix(".lua") for p in files("tasks.coordination.lua").iterdir()
                 if p.name.endswith(".lua"))  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_lua_script_opens_with_its_contract(name):
    """KEYS, ARGV and what it returns, in the comment block before any code."""
    lines = read_script(name).splitlines()
    code_at = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    contract = "\n".join(lines[:code_at])
    assert "KEYS" in contract
    if name != "capacity_sweep":  # the shared start: keys only, no arguments nor answer
        assert "ARGV" in contract
        assert "Returns" in contract
