from __future__ import annotations

import pytest
import redis
from typer.testing import CliRunner

from deployments import cli
from deployments.cli.capacity import capacity_app
from tasks.control.planning import settings_offer
from tasks.coordination.capacity.budget import WorkerKind, host_budget
from tasks.coordination.capacity.leases import CapacityManager
from tasks.settings import load_settings

from .conftest import TEST_REDIS_URL

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch, redis_prefix):
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("REDIS_KEY_PREFIX", redis_prefix)
    yield


def test_plan_prints_the_budget_the_need_and_the_largest_counts():
    result = runner.invoke(
        capacity_app, ["plan", "--cpu", "8", "--ram", "16", "--registre", "1", "--ocr", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "6.4" in result.output and "12.8" in result.output
    assert "5.5" in result.output and "86 %" in result.output
    assert "fits" in result.output and "does not fit" not in result.output
    assert "OCR alone" in result.output


def test_plan_exits_1_when_the_workers_do_not_fit():
    result = runner.invoke(
        capacity_app,
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
        capacity_app, ["plan", "--cpu", "8", "--ram", "16", "--registre", "2", "--ocr", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "31 %" in result.output  # 2 x 1 vCPU of 6.4


def test_plan_without_a_size_uses_this_machine_and_says_so(monkeypatch):
    monkeypatch.delenv("SERVER_MAX_CPU", raising=False)
    monkeypatch.setenv("SERVER_MAX_RAM", "16")
    result = runner.invoke(capacity_app, ["plan"])
    settings = load_settings()
    assert f"host: {settings.server_max_cpu:g} vCPU (detected: " in result.output
    assert ", 16 GB (SERVER_MAX_RAM)" in result.output
    result = runner.invoke(capacity_app, ["plan", "--cpu", "8", "--ram", "16"])
    assert "host: 8 vCPU (--cpu), 16 GB (--ram)" in result.output


def test_status_lists_live_hosts_and_reservations(redis_prefix):
    manager = CapacityManager(redis.Redis.from_url(TEST_REDIS_URL), prefix=redis_prefix)
    manager.register_host("host-a", host_budget(8, 16, 20, 20))
    manager.reserve(WorkerKind.INDEX_OCR, worker_id="run-42", host_id="host-a")
    result = runner.invoke(capacity_app, ["status"])
    assert result.exit_code == 0, result.output
    assert "host-a" in result.output and "run-42" in result.output
    assert "index-ocr" in result.output
    assert "0/1600 requests" in result.output


# --- the start-up check of `registre config check`, `registre worker`, `registre up`

SEED_HOST_ENV = {"SERVER_MAX_CPU": "8", "SERVER_MAX_RAM": "16", "WORKER_COUNT": "3",
                 "OCR_WORKER_POOL_SIZE": "2", "CAPACITY_OVERCOMMIT": "refuse"}  # fmt: skip
REFUSED = (
    "Insufficient server capacity: WORKER_COUNT=3 registre runs beside the OCR minimums"
    " (1 index + 1 acte): CPU needs 11.5 vCPU, 6.4 vCPU available. Lower the counts or the COST_*"
    " table, or set SERVER_MAX_CPU / SERVER_MAX_RAM to the host's real size if it is larger, or"
    " set CAPACITY_OVERCOMMIT=reduce to run 1 registre run + 2 OCR runs\n"
)


@pytest.fixture
def seed_host(monkeypatch):
    for name, value in SEED_HOST_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("seed_host")
def test_config_check_refuses_registre_runs_that_starve_ocr_with_the_exact_message():
    result = runner.invoke(cli.app, ["config", "check"])
    assert result.exit_code == 2
    assert result.stderr == REFUSED
    assert (
        "host: 8 vCPU (SERVER_MAX_CPU), 16 GB (SERVER_MAX_RAM); budget 6.4 vCPU / 12.8 GB after"
        " the 20 % / 20 % reserve\n"
    ) in result.stdout


@pytest.mark.usefixtures("seed_host")
def test_config_check_with_reduce_says_to_what(monkeypatch):
    monkeypatch.setenv("CAPACITY_OVERCOMMIT", "reduce")
    result = runner.invoke(cli.app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert (
        "Insufficient server capacity: WORKER_COUNT=3 registre runs beside the OCR minimums (1"
        " index + 1 acte): CPU needs 11.5 vCPU, 6.4 vCPU available; CAPACITY_OVERCOMMIT=reduce:"
        " WORKER_COUNT reduced from 3 to 1\n"
    ) in result.stdout
    assert "runs on this host: 1 registre, 2 OCR (CAPACITY_OVERCOMMIT=reduce)" in result.stdout


def test_config_check_says_the_size_was_detected(monkeypatch):
    monkeypatch.delenv("SERVER_MAX_CPU", raising=False)
    monkeypatch.delenv("SERVER_MAX_RAM", raising=False)
    result = runner.invoke(cli.app, ["config", "check"])
    assert f"host: {load_settings().host_size()}; budget " in result.stdout
    assert "(detected: " in result.stdout


@pytest.mark.usefixtures("seed_host")
def test_worker_refuses_before_starting_anything(tmp_path, redis_prefix):
    run_dir = tmp_path / "run"
    result = runner.invoke(cli.app, ["worker", "--run-dir", str(run_dir)])
    assert (result.exit_code, result.stderr) == (2, REFUSED)
    assert not run_dir.exists()  # no log, no Prefect worker
    manager = CapacityManager(redis.Redis.from_url(TEST_REDIS_URL), prefix=redis_prefix)
    assert manager.status().hosts == {}  # no budget registered


@pytest.mark.usefixtures("seed_host")
def test_up_refuses_before_starting_anything(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(cli.app, ["up", "--run-dir", str(run_dir)])
    assert (result.exit_code, result.stderr) == (2, REFUSED)
    assert not run_dir.exists()  # no Prefect server, no deploy, no host


@pytest.mark.usefixtures("seed_host")
def test_worker_with_reduce_runs_the_reduced_counts(monkeypatch, tmp_path):
    from deployments import worker

    monkeypatch.setenv("CAPACITY_OVERCOMMIT", "reduce")
    started = []
    monkeypatch.setattr(worker, "run_host", lambda *args: started.append(args))
    result = runner.invoke(cli.app, ["worker", "--run-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "WORKER_COUNT reduced from 3 to 1" in result.stdout
    [(settings, pools, _)] = started
    assert (settings.worker_count, settings.ocr_worker_pool_size) == (1, 2)
    # what the host then offers its Prefect workers: exactly that, with nothing left to cut
    offer = settings_offer(settings, pools)
    assert (offer.registre, offer.ocr, offer.notes) == (1, 2, ())
