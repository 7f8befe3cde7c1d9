"""What an operator must hear about, found by the rebalance at every tick and emitted as Prefect
events `registre.alert.<kind>`, which the automations `registre deploy` creates send to the
webhook (deployments/alerts.py). Each condition is said at most once per ALERT_PERIOD_MINUTES
for the same subject (an environment, a stage, a host): a Redis key whose TTL is the period.
docs/operations.md lists them with what to do."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from prefect.events import emit_event

from tasks.control.dispatch import ControlPlane, Picture
from tasks.control.pools import DOCUMENT_DEPLOYMENTS
from tasks.coordination.ratelimit import WindowUsage
from tasks.queue.client import QueueError

__all__ = ["EVENT_PREFIX", "Alert", "Raised", "check", "emit"]

logger = logging.getLogger(__name__)

EVENT_PREFIX = "registre.alert."
FIRST, QUOTED = 3, 200  # error messages quoted in a digest, and characters of each


class Alert(StrEnum):
    """The conditions, each one automation; the value is the event's last word."""

    ERRORS = "errors"
    STALLED = "stalled"
    HOST_LOST = "host-lost"
    NO_FIT = "no-fit"
    GEMINI_PAUSED = "gemini-paused"
    GEMINI_BUSY = "gemini-busy"
    SPEND_CAP = "spend-cap"

    @property
    def event(self) -> str:
        return f"{EVENT_PREFIX}{self.value}"


@dataclass(frozen=True)
class Raised:
    """One condition found, for one subject."""

    alert: Alert
    subject: str  # what it is about: an environment, a stage, a host, "gemini"
    message: str  # what happened and what to look at, for a person
    numbers: dict[str, Any] = field(default_factory=dict)


def check(cp: ControlPlane, picture: Picture, usage: WindowUsage, now: datetime) -> list[Raised]:
    """Every condition that holds now. The error digest and the stall are not even looked at
    while their last alert stands (their queries cost the most)."""
    return [
        *_errors(cp, now),
        *_stalled(cp, picture, now),
        *_hosts_lost(cp, picture),
        *_no_fit(picture),
        *_gemini(cp, usage, now),
        *_spend_caps(picture),
    ]


def emit(cp: ControlPlane, found: list[Raised]) -> list[Raised]:
    """Emit the alerts not sent within their period; returns those emitted."""
    period_s = int(cp.settings.alert_period_minutes * 60)
    sent = []
    for raised in found:
        if not cp.redis.set(
            cp.keys.alert_sent(raised.alert, raised.subject), 1, nx=True, ex=period_s
        ):
            continue
        emit_event(
            event=raised.alert.event,
            resource={
                "prefect.resource.id": f"{raised.alert.event}.{raised.subject}",
                "prefect.resource.name": f"{raised.alert.value} {raised.subject}",
            },
            payload={
                "alert": raised.alert.value,
                "subject": raised.subject,
                "message": raised.message,
                **raised.numbers,
            },
        )
        if raised.alert is Alert.ERRORS:
            cp.redis.set(cp.keys.alert_errors_since(raised.subject), raised.numbers["until"])
        logger.warning("alert %s: %s", raised.alert.value, raised.message)
        sent.append(raised)
    return sent


def _due(cp: ControlPlane, alert: Alert, subject: str) -> bool:
    return not cp.redis.exists(cp.keys.alert_sent(alert, subject))


def _errors(cp: ControlPlane, now: datetime) -> list[Raised]:
    """Per environment, the documents that ended in error since the last digest (at most one
    period back: errors older than that were either said or predate the alerts)."""
    period = timedelta(minutes=cp.settings.alert_period_minutes)
    found = []
    for env in cp.queue.environments:
        if not _due(cp, Alert.ERRORS, env):
            continue
        stored = cp.redis.get(cp.keys.alert_errors_since(env))
        since = (
            max(datetime.fromisoformat(stored.decode()), now - period) if stored else now - period
        )
        queue = cp.queue.only(env)
        counts = queue.finished_counts(since).get(env, {})
        count = sum(n for (status, _), n in counts.items() if status == queue.statuses.error)
        if not count:
            continue
        try:
            last = queue.last_errors(env, "document_number, error_message, ocr_error", FIRST)
        except QueueError:  # counted a moment ago; the count alone still tells
            last = []
        quoted = "; ".join(
            f"{r['document_number']}: {(r['ocr_error'] or r['error_message'] or '')[:QUOTED]}"
            for r in last
        )
        latest = f" Latest: {quoted}." if quoted else ""
        message = (
            f"{env}: {count} document(s) ended in error since {since:%Y-%m-%d %H:%M} UTC.{latest}"
            " See `registre status` and the rows' error_message."
        )
        found.append(
            Raised(
                Alert.ERRORS,
                env,
                message,
                {"count": count, "since": since.isoformat(), "until": now.isoformat()},
            )
        )
    return found


def _stalled(cp: ControlPlane, picture: Picture, now: datetime) -> list[Raised]:
    """A stage with documents waiting that has not moved for ALERT_STALL_MINUTES: nothing
    waited for it, and no run of it ended, all that time."""
    stall = timedelta(minutes=cp.settings.alert_stall_minutes)
    found = []
    for deployment in DOCUMENT_DEPLOYMENTS:
        stage, waiting = deployment.flow, picture.waiting.get(deployment.flow, 0)
        idle_key = cp.keys.alert_stage_idle(stage)
        if not waiting:
            cp.redis.set(idle_key, now.isoformat())
            continue
        stored = cp.redis.get(idle_key)
        if stored is None:  # first look: the clock starts now
            cp.redis.set(idle_key, now.isoformat())
            continue
        moved = datetime.fromisoformat(stored.decode())
        ended = cp.orchestrator.last_completed(deployment)
        if ended is not None:
            moved = max(moved, ended)
        if now - moved < stall or not _due(cp, Alert.STALLED, stage):
            continue
        minutes = (now - moved).total_seconds() / 60
        message = (
            f"{stage}: {waiting} document(s) waiting and none finished for"
            f" {minutes:.0f} min. Look at the stage's runs in the Prefect UI, the hosts"
            f" (`registre status`) and the registry or Gemini."
        )
        found.append(
            Raised(Alert.STALLED, stage, message, {"waiting": waiting, "minutes": round(minutes)})
        )
    return found


def _hosts_lost(cp: ControlPlane, picture: Picture) -> list[Raised]:
    """Hosts that held runs at the last look and are gone now (their budget expired)."""
    state = picture.capacity
    held = Counter(str(w.get("host")) for w in state.workers)
    stored = cp.redis.get(cp.keys.alert_hosts_seen)
    before: dict[str, int] = json.loads(stored) if stored else {}
    now_seen = {host: held.get(host, 0) for host in state.hosts}
    cp.redis.set(cp.keys.alert_hosts_seen, json.dumps(now_seen))
    found = []
    for host, runs in before.items():
        if host in state.hosts or not runs:
            continue
        message = (
            f"host {host} disappeared while it held {runs} run(s): its runs are taken"
            " back (crash recovery); look at the machine, then `registre worker` there."
        )
        found.append(Raised(Alert.HOST_LOST, host, message, {"runs": runs}))
    return found


def _no_fit(picture: Picture) -> list[Raised]:
    """Documents waiting for a kind of run that no live host's budget fits."""
    hosts = picture.capacity.hosts
    notes = "; ".join(f"{h}: {n}" for h, ns in picture.capacity.notes.items() for n in ns)
    found = []
    for deployment in DOCUMENT_DEPLOYMENTS:
        waiting = picture.waiting.get(deployment.flow, 0)
        if not waiting or picture.limits.deployment_limit(deployment) > 0:
            continue
        why = (
            "no live host (start `registre worker`)"
            if not hosts
            else (f"no live host's budget fits one run of it ({notes or 'see the cost table'})")
        )
        message = f"{deployment.flow}: {waiting} document(s) waiting, and {why}."
        found.append(Raised(Alert.NO_FIT, deployment.flow, message, {"waiting": waiting}))
    return found


def _gemini(cp: ControlPlane, usage: WindowUsage, now: datetime) -> list[Raised]:
    """Gemini paused for quota, or above a share of its limits, for longer than allowed."""
    s = cp.settings
    share = max(usage.requests / usage.max_requests, usage.tokens / usage.max_tokens)
    found = []
    for alert, holds, minutes in (
        (Alert.GEMINI_PAUSED, usage.paused_for_s > 0, s.alert_gemini_paused_minutes),
        (Alert.GEMINI_BUSY, share >= s.alert_gemini_usage_share, s.alert_gemini_usage_minutes),
    ):
        key = cp.keys.alert_since(alert)
        if not holds:
            cp.redis.delete(key)
            continue
        cp.redis.set(key, now.isoformat(), nx=True)
        since = datetime.fromisoformat(cp.redis.get(key).decode())
        lasted = (now - since).total_seconds() / 60
        if lasted < minutes:
            continue
        if alert is Alert.GEMINI_PAUSED:
            message = (
                f"Gemini has been paused for quota (429s) for {lasted:.0f} min: OCR is"
                " waiting. Check the project's quota in Google's console and"
                " GEMINI_MAX_RPM / GEMINI_MAX_TPM."
            )
        else:
            message = (
                f"Gemini usage has been at {100 * share:.0f} % of its limit for"
                f" {lasted:.0f} min ({usage.requests}/{usage.max_requests} requests,"
                f" {usage.tokens:,}/{usage.max_tokens:,} tokens a minute): raise the"
                " quota before it throttles OCR."
            )
        found.append(
            Raised(alert, "gemini", message, {"minutes": round(lasted), "share": round(share, 3)})
        )
    return found


def _spend_caps(picture: Picture) -> list[Raised]:
    return [
        Raised(Alert.SPEND_CAP, f"{env}-{cap.kind}", cap.message, cap.numbers())
        for env, caps in picture.capped.items()
        for cap in caps
    ]
