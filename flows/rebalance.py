"""The rebalance: every OCR_REBALANCE_INTERVAL_MS, the limits from the live hosts, the index/acte
split, the reconciliation of dead runs and a dispatch, with a report in the UI when something
changed, and the clean-up of its own old runs. Cheap and idempotent: a skipped or cancelled run
loses nothing.

python -m flows.rebalance
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.control import alerts
from tasks.control.dispatch import ControlPlane, Picture, dispatch, reconcile
from tasks.control.pools import REBALANCE
from tasks.coordination.ratelimit import WindowUsage
from tasks.services import gemini_limiter
from tasks.settings import load_settings

LOCK_WAIT_S = 10  # a worker's dispatch holds the lock for a fraction of a second
REPORT_REFRESH_S = 3600  # an unchanged report is written again after this (or half the retention)
CLEANUP_BATCH = 50  # old runs deleted per tick: 2 a minute come, a backlog goes at 100 a minute


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def report(picture: Picture, taken_back: list[str], usage: WindowUsage) -> str:
    """The markdown artifact: the system's state as this rebalance saw it."""
    state, limits = picture.capacity, picture.limits
    lines = [
        "# Rebalance",
        "",
        "## Hosts",
        "",
        "| host | budget vCPU | budget GB | registre runs | OCR runs |",
        "|---|---|---|---|---|",
    ]
    for host, budget in state.hosts.items():
        runs = state.runs.get(host, {})
        lines.append(
            f"| {host} | {_num(budget.cpu)} | {_num(budget.ram)} |"
            f" {runs.get('registre', 0)} | {runs.get('ocr', 0)} |"
        )
    if not state.hosts:
        lines.append("| (no live host: every limit is 0) | | | | |")
    lines += [
        "",
        f"Allocated: {_num(state.allocated.cpu)} vCPU / {_num(state.allocated.ram)} GB"
        f" of {_num(state.budget.cpu)} vCPU / {_num(state.budget.ram)} GB,"
        f" {len(state.workers)} run(s) holding capacity.",
        "",
    ]
    changed = picture.limits_changed
    lines += ["## Limits", "", "| limit | value | changed |", "|---|---|---|"]
    for name, value in limits.as_json().items():
        was = f"from {changed[name][0]}" if name in changed else ""
        label = {
            "registre": "pool registre",
            "ocr": "pool ocr",
            "index": "queue ocr/index",
            "acte": "queue ocr/acte",
        }[name]
        lines.append(f"| {label} | {value} | {was} |")
    lines += ["", f"Allocation (`worker_pool:allocation`): {limits.split.as_json()}", ""]
    lines += [
        "## Queue",
        "",
        "| environment | waiting download | ready for index OCR | ready for acte OCR |",
        "|---|---|---|---|",
    ]
    for env, waiting in picture.waiting_by_env.items():
        lines.append(
            f"| {env} | {waiting['registre']} | {waiting['ocr-index']} | {waiting['ocr-acte']} |"
        )
    lines += ["", f"Runs in progress: {picture.active}; created now: {len(picture.created)}"]
    lines += [f"- {name}" for name in picture.created]
    pause = f", paused for {usage.paused_for_s:.1f} s" if usage.paused_for_s else ""
    lines += [
        "",
        "## Gemini, trailing minute",
        "",
        f"{usage.requests} / {usage.max_requests} requests"
        f" ({100 * usage.requests / usage.max_requests:.0f} % of RPM),"
        f" {usage.tokens:,} / {usage.max_tokens:,} tokens"
        f" ({100 * usage.tokens / usage.max_tokens:.0f} % of TPM){pause}",
        "",
    ]
    caps = [cap.message for caps in picture.capped.values() for cap in caps]
    if caps:
        lines += ["## Spend caps reached", ""] + [f"- {line}" for line in caps] + [""]
    lines += ["## Taken back", ""] + ([f"- {line}" for line in taken_back] or ["nothing"])
    notes = [f"{host}: {note}" for host, ns in state.notes.items() for note in ns]
    if notes:
        lines += ["", "## Capacity", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def fingerprint(picture: Picture, taken_back: list[str]) -> str:
    """What a new report is written for: hosts and budgets, limits and split, capacity notes,
    which queues have documents waiting, runs created, rows taken back. Not Gemini's usage nor
    the counts of runs, which move at every tick."""
    state = picture.capacity
    seen = {
        "hosts": {host: [budget.cpu, budget.ram] for host, budget in state.hosts.items()},
        "limits": picture.limits.as_json(),
        "notes": state.notes,
        "waiting": sorted(
            f"{env}/{flow_name}"
            for env, waiting in picture.waiting_by_env.items()
            for flow_name, rows in waiting.items()
            if rows
        ),
        "created": picture.created,
        "taken_back": taken_back,
        "capped": sorted(f"{c.env}/{c.kind}" for caps in picture.capped.values() for c in caps),
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()


def report_refresh_s(rebalance_run_retention_hours: float) -> int:
    """How long an unchanged report stands: the latest one's run must outlive it (clean-up)."""
    return max(1, int(min(REPORT_REFRESH_S, rebalance_run_retention_hours * 3600 / 2)))


def publish(cp: ControlPlane, picture: Picture, taken_back: list[str], usage: WindowUsage) -> bool:
    """The `rebalance` artifact, unless the last one (within its refresh) said the same."""
    key, seen = cp.keys.rebalance_reported, fingerprint(picture, taken_back)
    if cp.redis.get(key) == seen.encode():
        return False
    create_markdown_artifact(
        key="rebalance",
        markdown=report(picture, taken_back, usage),
        description="limits, allocation, queue, Gemini usage",
    )
    ttl_s = report_refresh_s(cp.settings.rebalance_run_retention_hours)
    cp.redis.set(key, seen, ex=ttl_s)
    return True


def forget_old_runs(cp: ControlPlane) -> int:
    """This deployment's runs past REBALANCE_RUN_RETENTION_HOURS, a batch per tick: Prefect's
    db_vacuum has one retention for every deployment (the document runs')."""
    retention = timedelta(hours=cp.settings.rebalance_run_retention_hours)
    cutoff = datetime.now(UTC) - retention
    return cp.orchestrator.delete_ended_runs(REBALANCE, cutoff, CLEANUP_BATCH)


@flow(name=REBALANCE.flow)
def rebalance() -> dict[str, Any]:
    """Limits from the live hosts, the OCR split by queue depth, dead runs taken back, runs for
    the waiting documents."""
    logger = get_run_logger()
    settings = load_settings()
    # Plain calls, not tasks: at 2,880 runs a day, each task run would add a row, its three
    # states, three events and a log line, which the one log line below makes redundant.
    with ControlPlane.open(settings) as cp:
        taken_back = reconcile(cp)
        picture = dispatch(cp, verify=True, wait_s=LOCK_WAIT_S)
        if picture is None:  # a worker is dispatching this very moment: it does the same
            deleted = forget_old_runs(cp)
            logger.info("another dispatcher holds the lock; limits left to it")
            return {"taken_back": len(taken_back), "deleted": deleted}
        usage = gemini_limiter(settings, cp.redis).usage()
        published = publish(cp, picture, taken_back, usage)
        alerted: list[alerts.Raised] = []
        if settings.alert_webhook_url is not None:  # no webhook: nobody to tell
            alerted = alerts.emit(cp, alerts.check(cp, picture, usage, datetime.now(UTC)))
        deleted = forget_old_runs(cp)
    if published:  # a note stands until its host changes: said once, not every 30 s
        for host, notes in picture.capacity.notes.items():
            for note in notes:
                logger.warning("%s: %s", host, note)
    logger.info(
        "limits %s, %d run(s) created, %d row(s) taken back, %d old rebalance run(s) deleted%s",
        picture.limits.as_json(),
        len(picture.created),
        len(taken_back),
        deleted,
        "" if published else "; report unchanged",
    )
    return {
        "limits": picture.limits.as_json(),
        "created": picture.created,
        "taken_back": taken_back,
        "published": published,
        "alerts": [f"{a.alert.value} {a.subject}" for a in alerted],
        "deleted": deleted,
    }


if __name__ == "__main__":
    print(rebalance())
