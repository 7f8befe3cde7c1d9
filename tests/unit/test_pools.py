from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from tasks.control.pools import DEPLOYMENTS, DOCUMENT_DEPLOYMENTS, POOL_QUEUES, REBALANCE

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


def deployments_in_yaml() -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}


def test_prefect_yaml_deploys_exactly_the_deployments_the_code_names_on_their_pools():
    found = deployments_in_yaml()
    assert set(found) == {d.name for d in DEPLOYMENTS}
    for d in DEPLOYMENTS:
        pool = found[d.name]["work_pool"]
        assert (pool["name"], pool["work_queue_name"]) == (d.pool, d.queue)
        assert d.queue in POOL_QUEUES[d.pool]
        path, function = found[d.name]["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, function).name == d.flow  # runs are "<flow>/<deployment>"


def test_document_deployments_take_env_and_job_id_and_enforce_them():
    found = deployments_in_yaml()
    for d in DOCUMENT_DEPLOYMENTS:
        assert found[d.name]["enforce_parameter_schema"] is True
        assert "parameters" not in found[d.name]  # nothing to default: each run is one document


def test_the_rebalance_runs_every_30_s_one_at_a_time_on_its_own_pool():
    rebalance = deployments_in_yaml()[REBALANCE.name]
    assert rebalance["schedules"] == [{"interval": 30}]
    assert rebalance["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert REBALANCE.pool not in {d.pool for d in DOCUMENT_DEPLOYMENTS}
