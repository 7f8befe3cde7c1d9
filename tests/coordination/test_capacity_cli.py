from __future__ import annotations

import pytest
import redis
from typer.testing import CliRunner

from deployments.capacity_cli import app
from tasks.capacity import CapacityManager, WorkerKind, host_budget
from tasks.settings import get_settings

from .conftest import TEST_REDIS_URL

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch, redis_prefix):
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("REDIS_KEY_PREFIX", redis_prefix)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_plan_prints_the_budget_the_need_and_the_largest_counts():
    result = runner.invoke(
        app, ["plan", "--cpu", "8", "--ram", "16", "--registre", "1", "--ocr", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "6.4" in result.output and "12.8" in result.output
    assert "5.5" in result.output and "86 %" in result.output
    assert "fits" in result.output and "does not fit" not in result.output
    assert "OCR alone" in result.output


def test_plan_exits_1_when_the_workers_do_not_fit():
    result = runner.invoke(
        app,
        [
            "plan",
            "--cpu",
            "8",
            "--ram",
            "16",
            "--reserve-cpu",
            "20",
            "--registre",
            "2",
            "--ocr",
            "2",
        ],
    )
    assert result.exit_code == 1
    assert "does not fit" in result.output


def test_cost_overrides_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("COST_REGISTRE_CPU", "1")
    result = runner.invoke(
        app, ["plan", "--cpu", "8", "--ram", "16", "--registre", "2", "--ocr", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "31 %" in result.output  # 2 x 1 vCPU of 6.4


def test_status_lists_live_hosts_and_reservations(redis_prefix):
    manager = CapacityManager(redis.Redis.from_url(TEST_REDIS_URL), prefix=redis_prefix)
    manager.register_host("host-a", host_budget(8, 16, 20, 20))
    manager.reserve(WorkerKind.INDEX_OCR, worker_id="run-42", host_id="host-a")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "host-a" in result.output and "run-42" in result.output
    assert "index-ocr" in result.output
    assert "0/1600 requests" in result.output
