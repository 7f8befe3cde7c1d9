"""`registre status` against a real Redis and the Supabase stand-ins, with Prefect unreachable
(tests/e2e/flows/test_status.py has the Prefect part against a real server)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prefect.settings import PREFECT_API_URL, temporary_settings
from psycopg.types.json import Jsonb
from rich.console import Console
from typer.testing import CliRunner

from deployments.cli import app
from deployments.status import Data, Sources, snapshot
from deployments.status_view import render
from tasks.control.pools import run_owner
from tasks.coordination.capacity.budget import WorkerKind, host_budget
from tasks.queue import client as supabase_client
from tasks.queue.jobs import Stage
from tasks.queue.statuses import SEED
from tasks.queue.table import Queue
from tasks.services import capacity_manager, gemini_limiter
from tasks.settings import Settings
from tests.conftest import SupabaseProject

from .conftest import TEST_REDIS_URL

RUN_ID = str(uuid.uuid4())
OWNER = run_owner("registre", RUN_ID)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def no_prefect():
    """Prefect unreachable: a port nothing listens on."""
    api = f"http://127.0.0.1:{closed_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: api}):
        yield api


@pytest.fixture
def quick_retries(monkeypatch):
    """An unreachable Supabase is retried 4 times over 7.5 s; the test need not wait that long."""
    monkeypatch.setattr(supabase_client, "NETWORK_BACKOFF", 0.01)


def insert(project: SupabaseProject, source: str, status: int, **columns) -> str:
    values = {"document_source": source, "document_number": "1 234 567", "cadastre": "Cadastre",
              "status_id": status, **columns}  # fmt: skip
    names, marks = ", ".join(values), ", ".join(["%s"] * len(values))
    query = f"INSERT INTO extraction_queue ({names}) VALUES ({marks}) RETURNING id"
    return str(project.sql(query, tuple(values.values()))[0][0])


@pytest.fixture
def system(supabase_projects, make_settings, redis_prefix, keys, quick_retries):
    """prod with rows in several statuses, a row held for 20 minutes by a registre run and one
    just claimed; staging's Supabase down; a live host with that run's lease; Gemini usage."""
    prod = supabase_projects["prod"]
    staging = SupabaseProject(f"http://127.0.0.1:{closed_port()}", "staging-key", "", Path())
    settings = make_settings(
        {"prod": prod, "staging": staging},
        redis_url=TEST_REDIS_URL,
        redis_key_prefix=redis_prefix,
        gemini_max_rpm=100,
        gemini_max_tpm=10_000,
    )
    insert(prod, "index", SEED.waiting)
    insert(prod, "index", SEED.waiting)
    insert(prod, "acte", SEED.ready_for_ocr, acte_type="Acte")
    insert(prod, "index", SEED.error, error_message="Lot inexistant",
           updated_at="2026-01-01T10:00:00Z")  # fmt: skip
    insert(prod, "acte", SEED.error, acte_type="Acte", ocr_error="Gemini: page unreadable",
           updated_at="2026-01-02T10:00:00Z")  # fmt: skip
    insert(prod, "acte", SEED.done, acte_type="Acte", downloaded_at=datetime.now(UTC),
           registry_cost_usd=1.5, gemini_cost_at=datetime.now(UTC), gemini_cost_usd=0.25,
           gemini_usage=Jsonb({"gemini-2.5-flash": {"input_tokens": 1200, "output_tokens": 300,
                                                    "cost_usd": 0.25}}))  # fmt: skip
    old = insert(prod, "index", SEED.waiting, document_number="111")
    insert(prod, "index", SEED.waiting, document_number="222")
    queue = Queue(settings).only("prod")
    assert [j.id for j in queue.claim(Stage.REGISTRE, 1, OWNER, job_id=old)] == [old]
    prod.sql("UPDATE extraction_queue SET processing_started_at = now() - interval '20 minutes'"
             " WHERE id = %s", (old,))  # fmt: skip
    assert queue.claim(Stage.REGISTRE, 1, run_owner("registre", uuid.uuid4()))  # held 0 min

    client = redis.Redis.from_url(TEST_REDIS_URL)
    manager = capacity_manager(settings, client)
    manager.register_host("host-a", host_budget(8, 16, 20, 20))
    manager.reserve(WorkerKind.REGISTRE, worker_id=OWNER, host_id="host-a")
    limiter = gemini_limiter(settings, client)
    limiter.reconcile(limiter.acquire(1000), 2000)
    limiter.acquire(500)
    limiter.pause_all(30)
    client.set(keys.pool_allocation,
               json.dumps({"indexWorkers": 1, "acteWorkers": 2, "totalWorkers": 3}))  # fmt: skip
    yield settings
    client.close()


def test_status_tells_each_sections_truth_and_names_what_is_down(system, no_prefect):
    with Sources.open(system) as src:
        found = snapshot(src)
    json.dumps(found)  # the --json document

    [host] = found["capacity"]["hosts"]
    assert host["host"] == "host-a"
    assert host["budget"] == {"cpu": 6.4, "ram": 12.8} and host["allocated"] == {"cpu": 3, "ram": 1}
    assert [(r["run"], r["kind"]) for r in host["runs"]] == [(OWNER, "registre")]

    gemini = found["gemini"]
    assert (gemini["requests"], gemini["tokens"]) == (2, 2500)
    assert (gemini["rpm_percent"], gemini["tpm_percent"]) == (2, 25)
    assert 25 < gemini["paused_for_s"] <= 30

    assert "PREFECT_API_URL" in found["limits"]["prefect"]["down"]
    assert no_prefect in found["limits"]["prefect"]["down"]
    assert found["limits"]["allocation"] == {"indexWorkers": 1, "acteWorkers": 2,
                                             "totalWorkers": 3}  # fmt: skip

    queue = found["queue"]
    midnight = f"{datetime.now(UTC):%Y-%m-%d}T00:00:00+00:00"
    assert (queue["days"], queue["finished_since"]) == (1, midnight)
    prod = {(c["status"], c["source"], c["finished"]): c["rows"]
            for c in queue["environments"]["prod"]["rows"]}  # fmt: skip
    # the errors of January are not today's: a finished row counts in its period only
    assert prod == {("waiting (1)", "index", False): 2,
                    ("downloading or OCR in progress (2)", "index", False): 2,
                    ("ready for OCR (3)", "acte", False): 1,
                    ("done (4)", "acte", True): 1}  # fmt: skip
    down = queue["environments"]["staging"]["down"]
    assert "Supabase unreachable" in down and "STAGING_SUPABASE_URL" in down

    [held] = found["held"]["environments"]["prod"]
    assert (held["number"], held["stage"], held["owner"]) == ("111", "registre", OWNER)
    assert 19 * 60 < held["held_s"] < 25 * 60
    assert held["run"] == {"id": RUN_ID, "name": None, "state": None}
    assert "PREFECT_API_URL" in found["held"]["prefect"]["down"]
    assert "down" in found["held"]["environments"]["staging"]

    errors = found["errors"]["prod"]
    assert [(e["stage"], e["message"]) for e in errors] == [
        ("ocr", "Gemini: page unreadable"), ("registre", "Lot inexistant")]  # fmt: skip
    assert "down" in found["errors"]["staging"]

    cost = found["costs"]["prod"]
    assert (cost["documents"], cost["downloads"], cost["reused"]) == (1, 1, 0)
    assert (cost["registry_usd"], cost["gemini_usd"], cost["total_usd"]) == (1.5, 0.25, 1.75)
    assert cost["tokens"]["gemini-2.5-flash"]["input_tokens"] == 1200
    assert "down" in found["costs"]["staging"]

    console = Console(record=True, width=200)
    console.print(render(found))
    screen = console.export_text()
    for words in ("waiting (1)", "downloading or OCR in progress (2)", "ready for OCR (3)",
                  "done (4), today (UTC)", OWNER, "host-a",
                  "3 / 6.4", "PAUSED", "Lot inexistant", "STAGING_SUPABASE_URL", "$1.75",
                  "gemini-2.5-flash 1,200 in / 300 out"):  # fmt: skip
        assert words in screen, words
    for project_key in (src.settings.prod_supabase_service_key.get_secret_value(), "staging-key"):
        assert project_key not in screen and project_key not in json.dumps(found)


def test_redis_down_is_said_on_its_sections_and_the_queue_still_shows(
    supabase_projects, make_settings
):
    redis_url = f"redis://:not-shown@127.0.0.1:{closed_port()}/0"
    settings = make_settings({"prod": supabase_projects["prod"]}, redis_url=redis_url)
    insert(supabase_projects["prod"], "index", SEED.waiting)
    with Sources.open(settings) as src:
        found = snapshot(src)
    for section in (found["capacity"], found["gemini"], found["limits"]["allocation"]):
        assert "Redis unreachable" in section["down"] and "REDIS_URL" in section["down"]
    assert found["queue"]["environments"]["prod"]["rows"] == [
        {"status_id": 1, "status": "waiting (1)", "source": "index", "rows": 1, "finished": False}
    ]
    assert "not-shown" not in json.dumps(found)


def test_status_counts_the_rows_finished_in_its_period_and_estimates_all_time(
    supabase_projects, make_settings, redis_prefix
):
    prod = supabase_projects["prod"]
    settings = make_settings({"prod": prod}, redis_url=TEST_REDIS_URL,
                             redis_key_prefix=redis_prefix)  # fmt: skip
    insert(prod, "index", SEED.waiting, updated_at=datetime(2020, 1, 1, tzinfo=UTC))
    insert(prod, "index", SEED.done)  # today
    insert(prod, "index", SEED.error, updated_at=datetime.now(UTC) - timedelta(days=10))
    insert(prod, "acte", SEED.done, acte_type="Acte", updated_at=datetime(2020, 1, 1, tzinfo=UTC))
    prod.sql("ANALYZE extraction_queue")  # what autovacuum does: the estimate comes from it

    def finished(days: int) -> tuple[Data, dict[tuple[str, str], int]]:
        with Sources.open(settings, days=days) as src:
            found = snapshot(src, ["queue"])["queue"]
        rows = found["environments"]["prod"]["rows"]
        return found, {(r["status"], r["source"]): r["rows"] for r in rows if r["finished"]}

    today, counts = finished(1)
    assert counts == {("done (4)", "index"): 1}
    assert today["environments"]["prod"]["estimated_total_rows"] == 4
    waiting = [r for r in today["environments"]["prod"]["rows"] if not r["finished"]]
    assert [(r["status"], r["rows"]) for r in waiting] == [("waiting (1)", 1)]  # live: any age
    eleven, counts = finished(11)
    assert counts == {("done (4)", "index"): 1, ("error (5)", "index"): 1}
    assert eleven["finished_since"].startswith(f"{datetime.now(UTC) - timedelta(days=10):%Y-%m-%d}")

    console = Console(record=True, width=200)
    console.print(render({"generated_at": "now", "queue": eleven}))
    screen = console.export_text()
    assert "done and error last 11 days" in screen
    assert "error (5), last 11 days (UTC, today included)" in screen
    assert "all time: ≈ 4 (estimate)" in screen


def test_the_command_prints_json_and_refuses_json_with_watch(
    monkeypatch, supabase_projects, redis_prefix
):
    prod = supabase_projects["prod"]
    insert(prod, "plan_cadastraux", SEED.done)
    for name, value in {"PROD_SUPABASE_URL": prod.url, "PROD_SUPABASE_SERVICE_KEY":
                        prod.service_key, "REDIS_URL": TEST_REDIS_URL,
                        "REDIS_KEY_PREFIX": redis_prefix}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["status", "--json"])
    week = CliRunner().invoke(app, ["status", "--json", "--days", "7"])
    refused = CliRunner().invoke(app, ["status", "--json", "--watch"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["queue"]["environments"]["prod"]["rows"] == [
        {
            "status_id": 4,
            "status": "done (4)",
            "source": "plan_cadastraux",
            "rows": 1,
            "finished": True,
        }
    ]
    assert (found["queue"]["days"], json.loads(week.stdout)["queue"]["days"]) == (1, 7)
    assert found["capacity"]["hosts"] == [] and found["gemini"]["requests"] == 0
    assert refused.exit_code == 2 and "without --watch" in refused.output


def test_watch_refreshes_in_place_and_ctrl_c_exits_cleanly(redis_prefix, no_prefect):
    """In a terminal: at least two screens, then SIGINT ends it with status 0, no traceback."""
    # the environment of a fresh terminal: none of the settings earlier tests may have left
    configured = {name.upper() for name in Settings.model_fields} | {"REGISTRE_HOST_ID"}
    env = {name: value for name, value in os.environ.items() if name.upper() not in configured}
    env |= {"REDIS_URL": TEST_REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix,
            "PREFECT_API_URL": no_prefect, "COLUMNS": "120", "PYTHONFAULTHANDLER": "1"}  # fmt: skip
    primary, secondary = pty.openpty()
    registre = str(Path(sys.executable).with_name("registre"))
    process = subprocess.Popen([registre, "status", "--watch", "--interval", "1"], env=env,
                               stdin=secondary, stdout=secondary, stderr=secondary,
                               preexec_fn=_terminal_signals)  # fmt: skip
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while output.count(b"Capacity (allocated") < 2 and time.monotonic() < deadline:
            output += os.read(primary, 65536)
        process.send_signal(signal.SIGINT)
        # keep reading while it ends: a full terminal buffer would block its last screen's write
        ended_by = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < ended_by:
            output += _read_some(primary)
        if process.poll() is None:  # say where it is stuck: faulthandler dumps every thread
            process.send_signal(signal.SIGABRT)
            time.sleep(1)
            output += _read_some(primary)
        assert process.wait(5) == 0, output.decode(errors="replace")[-6000:]
    finally:
        if process.poll() is None:
            process.kill()
    while chunk := _read_some(primary):
        output += chunk
    os.close(primary)
    text = output.decode(errors="replace")
    assert text.count("Capacity (allocated") >= 2, text
    assert "\x1b[1A" in text  # the cursor moved back up: refreshed in place, not appended
    assert "Traceback" not in text and "Aborted" not in text


def _read_some(fd: int) -> bytes:
    """What the terminal holds within 0.2 s; b"" once it is empty or closed with the process."""
    if not select.select([fd], [], [], 0.2)[0]:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal closed with the process
        return b""


def _terminal_signals() -> None:
    """In the child: Ctrl-C as a terminal gives it, whatever the test process did with it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
