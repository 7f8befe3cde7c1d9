from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.settings.models.server.events import ServerEventsSettings
from prefect.settings.models.server.services import ServerServicesDBVacuumSettings

from deployments.up import retention_env, server_env
from tasks.settings import load_settings

VACUUM = "PREFECT_SERVER_SERVICES_DB_VACUUM_"


def settings(**values):
    return load_settings(_env_file=None, **values)


def test_the_retentions_become_prefects_db_vacuum_settings_as_prefect_reads_them(monkeypatch):
    """Prefect's own settings classes read what `registre up` sets (events want a duration,
    not seconds)."""
    for name, value in retention_env(settings(event_retention_hours=0.5)).items():
        monkeypatch.setenv(name, value)
    vacuum, events = ServerServicesDBVacuumSettings(), ServerEventsSettings()
    assert vacuum.enabled_vacuum_types == {"events", "flow_runs", "orphans"}
    assert vacuum.retention_period == timedelta(days=30)
    assert events.retention_period == timedelta(minutes=30)
    assert vacuum.loop_seconds == 75  # a 24th of the shortest retention


@pytest.mark.parametrize(
    ("days", "hours", "loop_s"),
    [
        (30, 48, "3600"),  # the defaults: Prefect's hourly loop
        (30, 0.1, "60"),  # a soak benchmark's minutes: every minute, no more often
        (0.05, 48, "180"),  # 1.2 hours of document runs
    ],
)
def test_the_vacuum_loop_follows_the_shortest_retention(days, hours, loop_s):
    env = retention_env(settings(document_run_retention_days=days, event_retention_hours=hours))
    assert env[f"{VACUUM}LOOP_SECONDS"] == loop_s


def test_an_operators_own_prefect_server_variable_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"{VACUUM}RETENTION_PERIOD=P90D\n{VACUUM}BATCH_SIZE=\n")
    monkeypatch.setenv(f"{VACUUM}LOOP_SECONDS", "600")
    env = server_env(settings(), "http://127.0.0.1:4200/api")
    assert env[f"{VACUUM}LOOP_SECONDS"] == "600"  # the environment's
    assert f"{VACUUM}RETENTION_PERIOD" not in env  # .env's: Prefect reads it itself
    assert env[f"{VACUUM}ENABLED"] == "events,flow_runs"
    assert env["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == "PT172800.000S"
