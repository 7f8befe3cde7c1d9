"""Alerts through Prefect automations, end to end: `registre deploy` makes the automations, the
rebalance finds each condition on the stand-ins and emits its event, Prefect's triggers call
the webhook, here a local HTTP receiver. And the daily spend cap: OCR waits at the cap and goes
on when it is raised."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from deployments.alerts import automation_name, sync_alerts
from deployments.processes import pids_with
from flows.rebalance import rebalance
from sandbox.registry import control
from sandbox.registry.catalogue import render_pdf
from tasks.control.alerts import Alert
from tasks.queue.costs import daily_costs
from tasks.queue.statuses import SEED
from tasks.queue.table import Queue
from tasks.settings import load_settings

from .conftest import REGISTRE
from .control_plane import ACTE, ONE_SLOT, acte_columns, index_columns, run_of

pytestmark = pytest.mark.slow

ALERT_WAIT_S = 60  # event -> Prefect's triggers -> the webhook call: seconds


class Receiver:
    """The webhook: every POST's JSON body, in arrival order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, alert: Alert, subject: str | None = None) -> list[dict[str, Any]]:
        return [
            b for b in self.bodies if b["alert"] == alert.value and subject in (None, b["subject"])
        ]

    def wait(self, alert: Alert, subject: str | None = None, timeout: float = ALERT_WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.of(alert, subject):
                return found[0]
            time.sleep(0.5)
        raise AssertionError(
            f"no {alert.value} alert for {subject} in {timeout:.0f} s: {self.bodies}"
        )


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", found.url)
    yield found
    found.server.shutdown()


@pytest.fixture
def alerting(system, receiver: Receiver) -> Iterator[Receiver]:
    """The system with its automations calling the receiver, and each test's own alert memory."""
    with system.client() as client:
        sync_alerts(client, load_settings())
    yield receiver
    control.reset_faults(system.pipeline.registry)
    httpx.delete(f"{system.pipeline.gemini}/_sandbox/faults").raise_for_status()
    with system.client() as client:  # the other tests run without alerts
        sync_alerts(client, load_settings().model_copy(update={"alert_webhook_url": None}))


def tick() -> dict[str, Any]:
    """One rebalance, here and now (the deployed one also runs every 30 s on the host)."""
    return rebalance()


def tick_until(receiver: Receiver, alert: Alert, subject: str, timeout: float) -> dict[str, Any]:
    """Rebalance here every few seconds until the alert arrives; its body."""
    deadline = time.monotonic() + timeout
    while not receiver.of(alert, subject) and time.monotonic() < deadline:
        tick()
        time.sleep(3)
    return receiver.wait(alert, subject)


def test_deploy_makes_one_automation_per_alert_and_removes_them_without_a_webhook(system, receiver):
    settings = load_settings()
    with system.client() as client:
        sync_alerts(client, settings)
        names = sync_alerts(client, settings)  # again: updated, not doubled
        assert names == [automation_name(a) for a in Alert]
        for alert in Alert:
            (found,) = client.read_automations_by_name(automation_name(alert))
            assert found.enabled and found.actions[0].type == "call-webhook"
            assert found.trigger.expect == {alert.event}
        assert sync_alerts(client, settings.model_copy(update={"alert_webhook_url": None})) == []
        assert all(not client.read_automations_by_name(automation_name(a)) for a in Alert)
    done = subprocess.run([REGISTRE, "deploy"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    with system.client() as client:
        assert client.read_automations_by_name(automation_name(Alert.ERRORS))
        sync_alerts(client, settings.model_copy(update={"alert_webhook_url": None}))


def test_errors_come_as_one_digest_per_period_and_a_stalled_stage_is_said(
    system, alerting, monkeypatch
):
    monkeypatch.setenv("ALERT_STALL_MINUTES", "0.5")
    pipeline = system.pipeline
    bad = [
        pipeline.insert("index", **{**index_columns(), "document_number": " "}),
        pipeline.insert("acte", **{**acte_columns(), "acte_type": None}),
    ]
    system.start_host("h1", **ONE_SLOT)
    system.wait(
        lambda: all(pipeline.row(i)["status_id"] == SEED.error for i in bad),
        180,
        "the malformed rows to end in error",
    )
    tick()
    digest = alerting.wait(Alert.ERRORS, "prod")
    # the host's own rebalance may have sent it after the first error: one digest either way
    assert digest["payload"]["count"] >= 1 and "ended in error" in digest["text"]
    assert "document_number is empty" in digest["text"] or "acte_type is required" in digest["text"]

    # a stalled registry: documents wait behind a download that does not end
    control.set_faults(pipeline.registry, latency_s=20)  # under every timeout: no run ends
    waiting = [pipeline.insert("index", **index_columns()) for _ in range(2)]
    third = pipeline.insert("index", **{**index_columns(), "document_number": ""})
    system.wait(
        lambda: run_of(system, waiting[0]) or run_of(system, waiting[1]), 120, "a download to start"
    )
    stalled = tick_until(alerting, Alert.STALLED, "registre", 120)
    assert "waiting and none finished" in stalled["text"]
    control.set_faults(pipeline.registry, latency_s=0)
    system.wait(lambda: pipeline.row(third)["status_id"] == SEED.error, 240, "the third error")
    tick()
    time.sleep(10)
    assert len(alerting.of(Alert.ERRORS, "prod")) == 1  # within the period: not again
    assert len(alerting.of(Alert.STALLED, "registre")) == 1


def test_a_lost_host_a_gemini_storm_and_work_no_host_fits_are_said(system, alerting, monkeypatch):
    monkeypatch.setenv("ALERT_GEMINI_PAUSED_MINUTES", "0.1")
    pipeline = system.pipeline
    # a cost table no live host fits: a registre run asks for more than any budget
    monkeypatch.setenv("COST_REGISTRE_CPU", "100")
    job = pipeline.insert("index", **index_columns())
    no_fit = tick_until(alerting, Alert.NO_FIT, "registre", 60)
    assert "no live host's budget fits one run" in no_fit["text"]
    monkeypatch.delenv("COST_REGISTRE_CPU")

    # a host that dies holding a run
    control.set_faults(pipeline.registry, latency_s=3)
    system.start_host("doomed", **ONE_SLOT)
    system.wait(
        lambda: (r := run_of(system, job)) and r.state.is_running(),
        120,
        "the document's run to start on the doomed host",
    )
    tick()  # seen holding it
    system.hosts.pop("doomed").kill()
    for pid in pids_with(b"REGISTRE_HOST_ID=doomed"):  # its workers and runs: a machine lost
        with suppress(ProcessLookupError):  # gone with one killed before it (a run's engine)
            os.kill(pid, signal.SIGKILL)
    lost = tick_until(alerting, Alert.HOST_LOST, "doomed", 120)
    assert "disappeared while it held 1 run" in lost["text"]

    # a 429 storm: Gemini stays paused
    control.set_faults(pipeline.registry, latency_s=0)
    httpx.post(
        f"{pipeline.gemini}/_sandbox/faults",
        json={"rate_limit_count": 400, "rate_limit_retry_s": 20},
    ).raise_for_status()
    pipeline.downloaded("acte", render_pdf(ACTE), **acte_columns())
    system.start_host("h2", **ONE_SLOT)
    paused = tick_until(alerting, Alert.GEMINI_PAUSED, "gemini", 180)
    assert "paused for quota" in paused["text"]


def test_the_spend_cap_holds_ocr_at_the_cap_and_raising_it_lets_the_rest_go(
    system, alerting, monkeypatch
):
    pipeline = system.pipeline
    today = datetime.now(UTC).date()
    spent_before = daily_costs(Queue(load_settings()), today)["prod"].gemini_usd
    cap = spent_before + 1e-6  # the first document read reaches it
    monkeypatch.setenv("GEMINI_DAILY_BUDGET_USD", str(cap))
    actes = [pipeline.downloaded("acte", render_pdf(ACTE), **acte_columns()) for _ in range(5)]
    system.start_host("h1", **ONE_SLOT)  # 2 OCR slots

    def done() -> list[str]:
        return [i for i in actes if pipeline.row(i)["status_id"] == SEED.done]

    system.wait(done, 300, "a first acte read")
    time.sleep(20)  # the runs in flight finish; no new one starts
    tick()
    finished = done()
    assert 1 <= len(finished) <= 2  # the documents already started when the cap was reached
    for job_id in set(actes) - set(finished):
        row = pipeline.row(job_id)
        assert row["status_id"] == SEED.ready_for_ocr and row["ocr_attempts"] == 0, row
        assert row["ocr_error"] is None
    alert = alerting.wait(Alert.SPEND_CAP, "prod-gemini")
    assert "reached the daily cap" in alert["text"] and "GEMINI_DAILY_BUDGET_USD" in alert["text"]
    status = subprocess.run(
        [REGISTRE, "status", "--json"], capture_output=True, text=True, timeout=60
    )
    assert "reached the daily cap" in json.dumps(json.loads(status.stdout)["costs"]["prod"])

    system.stop_host("h1")
    monkeypatch.setenv("GEMINI_DAILY_BUDGET_USD", str(cap + 100))  # raised
    system.start_host("h1", **ONE_SLOT)
    system.wait(lambda: len(done()) == len(actes), 400, "the rest read once the cap is raised")
