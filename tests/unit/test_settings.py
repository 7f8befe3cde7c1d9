from __future__ import annotations

import pytest

from tasks.coordination.machine import this_machine
from tasks.failures import ConfigError
from tasks.settings import load_settings


def settings(**values):
    return load_settings(_env_file=None, **values)


def test_defaults_are_the_operators_documented_ones():
    s = settings()
    assert (
        s.worker_count,
        s.ocr_worker_pool_size,
        s.ocr_min_index_workers,
        s.ocr_min_acte_workers,
        s.ocr_rebalance_interval_ms,
    ) == (1, 4, 1, 1, 30000)
    assert (s.server_reserve_cpu_percent, s.server_reserve_ram_percent) == (20, 20)
    assert s.capacity_overcommit == "refuse"
    assert s.environments() == []


def test_unset_host_size_is_this_machines_and_says_so(monkeypatch):
    monkeypatch.delenv("SERVER_MAX_CPU", raising=False)
    monkeypatch.delenv("SERVER_MAX_RAM", raising=False)
    machine = this_machine()
    s = settings()
    assert (s.server_max_cpu, s.server_max_ram) == (machine.cpu.value, machine.ram.value)
    assert s.size_origin("cpu") == f"detected: {machine.cpu.source}"
    assert f" vCPU (detected: {machine.cpu.source}), " in s.host_size()
    assert s.host_size().endswith(f" GB (detected: {machine.ram.source})")


def test_a_host_size_that_is_set_is_taken_as_given_and_named(monkeypatch):
    # bench/chaos.py sizes its hosts 20 vCPU / 32 GB on a 2-core machine, on purpose
    monkeypatch.setenv("SERVER_MAX_CPU", "20")
    monkeypatch.setenv("SERVER_MAX_RAM", "32")
    s = settings()
    assert (s.server_max_cpu, s.server_max_ram) == (20, 32)
    assert s.host_size() == "20 vCPU (SERVER_MAX_CPU), 32 GB (SERVER_MAX_RAM)"
    monkeypatch.setenv("SERVER_MAX_CPU", "")  # as copied from .env.example: unset
    s = settings()
    assert s.server_max_cpu == this_machine().cpu.value
    assert s.host_size().endswith(", 32 GB (SERVER_MAX_RAM)")


def test_environments_are_enabled_by_url_and_key_in_polling_order(monkeypatch):
    monkeypatch.setenv("DEV_SUPABASE_URL", "http://dev.example/")
    monkeypatch.setenv("DEV_SUPABASE_SERVICE_KEY", "dev-key")
    monkeypatch.setenv("PROD_SUPABASE_URL", "https://prod.example")
    monkeypatch.setenv("PROD_SUPABASE_SERVICE_KEY", "prod-key")
    envs = settings().environments()
    assert [e.name for e in envs] == ["prod", "dev"]
    assert envs[1].supabase_url == "http://dev.example"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WORKER_COUNT", "-1", "WORKER_COUNT: Input should be greater than or equal to 0"),
        ("SERVER_RESERVE_CPU_PERCENT", "120", "SERVER_RESERVE_CPU_PERCENT: Input should be less"),
        ("OCR_WORKER_POOL_SIZE", "four", "OCR_WORKER_POOL_SIZE: Input should be a valid integer"),
        ("SERVER_MAX_CPU", "0", "SERVER_MAX_CPU: Input should be greater than 0"),
        ("CAPACITY_OVERCOMMIT", "yes", "CAPACITY_OVERCOMMIT: Input should be 'refuse' or 'reduce'"),
        (
            "STAGING_SUPABASE_URL",
            "https://s.example",
            "STAGING_SUPABASE_URL is set but STAGING_SUPABASE_SERVICE_KEY is not",
        ),
    ],
)
def test_invalid_values_fail_naming_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        settings()


def test_a_key_without_url_is_refused_without_showing_the_key(monkeypatch):
    monkeypatch.setenv("PROD_SUPABASE_SERVICE_KEY", "super-secret-service-key")
    with pytest.raises(ConfigError) as info:
        settings()
    assert "PROD_SUPABASE_SERVICE_KEY is set but PROD_SUPABASE_URL is not" in str(info.value)
    assert "super-secret" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_secrets_are_never_printed(monkeypatch):
    monkeypatch.setenv("PROD_SUPABASE_URL", "https://prod.example")
    monkeypatch.setenv("PROD_SUPABASE_SERVICE_KEY", "super-secret-service-key")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")
    s = settings()
    shown = repr(s) + str(s) + repr(s.environments()) + s.model_dump_json()
    assert "super-secret" not in shown and "gemini-secret" not in shown


def test_every_setting_is_documented_in_env_example():
    import re
    from pathlib import Path

    from tasks.settings import Settings

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", text, re.M))
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_every_setting_is_in_the_readme_configuration_table():
    import re
    from pathlib import Path

    from tasks.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    named = set(re.findall(r"`([A-Z_]+)`", table))
    # `COST_REGISTRE_CPU`/`_RAM` names the pair
    named |= {m[0] + m[1] for m in re.findall(r"`([A-Z_]+_)(?:CPU|RAM)`/`_(RAM)`", table)}
    missing = {name.upper() for name in Settings.model_fields} - named
    assert not missing, f"not in README's configuration table: {sorted(missing)}"


def test_retentions_default_to_30_days_24_hours_48_hours():
    s = settings()
    assert (s.document_run_retention_days, s.rebalance_run_retention_hours,
            s.event_retention_hours) == (30, 24, 48)  # fmt: skip


def test_a_document_run_retention_of_an_hour_or_less_is_refused_as_prefect_would():
    """Prefect's db_vacuum refuses 1 hour or less: refused at start, naming the variable."""
    with pytest.raises(ConfigError, match="DOCUMENT_RUN_RETENTION_DAYS: must be more than 1 hour"):
        settings(document_run_retention_days=1 / 24)
    assert settings(document_run_retention_days=0.05).document_run_retention_days == 0.05
    # the rebalance's own clean-up takes any retention, minutes for a soak benchmark
    assert settings(rebalance_run_retention_hours=0.01).rebalance_run_retention_hours == 0.01
    with pytest.raises(ConfigError, match="REBALANCE_RUN_RETENTION_HOURS"):
        settings(rebalance_run_retention_hours=0)
