"""The alert conditions that need no service, the spend caps' arithmetic and the webhook's
payload as Prefect's own template engine renders it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest
from prefect.server.utilities.user_templates import render_user_template_sync

from deployments.alerts import PAYLOAD
from tasks.control.alerts import Alert, _no_fit, _spend_caps
from tasks.control.allocation import Split
from tasks.control.dispatch import Picture
from tasks.control.planning import Limits
from tasks.control.spending import caps_reached
from tasks.coordination.capacity.budget import Budget, Cost
from tasks.coordination.capacity.leases import CapacityStatus
from tasks.queue.costs import DailyCost
from tasks.queue.jobs import Stage
from tasks.settings import Settings

DAY = date(2026, 12, 7)


def picture(**changes: object) -> Picture:
    state = CapacityStatus(
        budget=Budget(8, 16),
        allocated=Cost(0, 0),
        hosts={"a": Budget(8, 16)},
        runs={"a": {"registre": 1, "ocr": 2}},
        notes={},
        workers=[],
    )
    seen = Picture(
        capacity=state,
        waiting={"registre": 2, "ocr-index": 0, "ocr-acte": 0},
        waiting_by_env={"prod": {"registre": 2, "ocr-index": 0, "ocr-acte": 0}},
        limits=Limits(1, 2, Split(1, 1)),
    )
    return replace(seen, **changes)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def cost(gemini_usd: float, registry_usd: float) -> DailyCost:
    return DailyCost(
        day=DAY,
        documents=3,
        downloads=3,
        reused=0,
        registry_usd=registry_usd,
        gemini_usd=gemini_usd,
    )


def test_documents_waiting_for_a_kind_no_host_fits_are_said_with_the_hosts_notes():
    assert _no_fit(picture()) == []
    short = picture(limits=Limits(0, 2, Split(1, 1)))
    short.capacity.notes["a"] = ["WORKER_COUNT=1 registre run needs 3 vCPU, the budget has 2"]
    (raised,) = _no_fit(short)
    assert raised.alert is Alert.NO_FIT and raised.subject == "registre"
    assert "2 document(s) waiting" in raised.message and "needs 3 vCPU" in raised.message


def test_with_no_live_host_the_alert_says_to_start_one():
    gone = picture(limits=Limits(0, 0, Split(0, 0)))
    gone = replace(gone, capacity=replace(gone.capacity, hosts={}))
    (raised,) = _no_fit(gone)
    assert "no live host" in raised.message and "registre worker" in raised.message


def test_no_cap_set_holds_nothing_back():
    assert caps_reached("prod", cost(1000, 1000), settings()) == []


@pytest.mark.parametrize(
    ("gemini_usd", "registry_usd", "held"),
    [
        (0.99, 4.99, []),
        (1.0, 0, [Stage.OCR]),
        (0, 5.0, [Stage.REGISTRE]),
        (2, 6, [Stage.OCR, Stage.REGISTRE]),
    ],
)
def test_a_cap_holds_its_stage_back_from_the_moment_spending_reaches_it(
    gemini_usd: float, registry_usd: float, held: list[Stage]
):
    caps = caps_reached(
        "prod",
        cost(gemini_usd, registry_usd),
        settings(gemini_daily_budget_usd=1, registry_daily_budget_usd=5),
    )
    assert [c.stage for c in caps] == held


def test_a_reached_cap_is_an_alert_that_says_what_waits_and_until_when():
    (cap,) = caps_reached("staging", cost(1.234, 0), settings(gemini_daily_budget_usd=1))
    (raised,) = _spend_caps(picture(capped={"staging": [cap]}))
    assert raised.alert is Alert.SPEND_CAP and raised.subject == "staging-gemini"
    assert "$1.23" in raised.message and "GEMINI_DAILY_BUDGET_USD" in raised.message
    assert "new OCR work waits until midnight UTC" in raised.message
    assert raised.numbers == {
        "kind": "gemini",
        "spent_usd": 1.234,
        "cap_usd": 1.0,
        "day": "2026-12-07",
    }


def test_the_webhook_payload_is_json_slack_reads_whatever_the_message_holds():
    """Quotes, accents and angle brackets in an error message do not break the JSON."""
    message = 'prod: 2 document(s) ended in error. Latest: 10 687 352: "Aucune information" <b>é'
    event = {
        "event": "registre.alert.errors",
        "occurred": "2026-12-07T12:00:00Z",
        "payload": {"alert": "errors", "subject": "prod", "message": message, "count": 2},
    }
    body = json.loads(render_user_template_sync(PAYLOAD, {"event": event}))
    assert body["text"] == message
    assert body["alert"] == "errors" and body["subject"] == "prod"
    assert body["payload"]["count"] == 2
