"""`registre status` on the screen: one renderable per section of deployments/status.py, drawn
once, as JSON, or refreshed in place (--watch)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text

from deployments.status import HELD_EXPECTED_S, SECTIONS, Data, Sources, snapshot
from tasks.request import SOURCES
from tasks.settings import Settings

__all__ = ["RENDERERS", "render", "show"]

MESSAGE_CHARS = 160  # an error message on the screen; --json has it whole


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _down(what: str, data: Any) -> Text | None:
    if isinstance(data, dict) and set(data) == {"down"}:
        return Text(f"{what}: {data['down']}", style="red")
    return None


def _ago(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def capacity(data: Data) -> RenderableType:
    table = Table(
        "host", "vCPU", "RAM GB", "runs holding it", title="Capacity (allocated / budget)"
    )
    for host in data["hosts"]:
        budget, used = host["budget"], host["allocated"]
        name = host["host"] or "(no host)"
        if budget is None:
            name += " (expired)"
        runs = "\n".join(
            f"{r['run']} ({r['kind']}, since {_ago(r['since'])})" for r in host["runs"]
        )
        notes = "\n".join(host["notes"])
        table.add_row(
            name,
            f"{_num(used['cpu'])} / {_num(budget['cpu']) if budget else '-'}",
            f"{_num(used['ram'])} / {_num(budget['ram']) if budget else '-'}",
            "\n".join(filter(None, [runs, notes])) or "-",
        )
    if not data["hosts"]:
        table.add_row("(no live host: no run can start)", "", "", "")
    b, a = data["budget"], data["allocated"]
    table.add_row("total", f"{_num(a['cpu'])} / {_num(b['cpu'])}",
                  f"{_num(a['ram'])} / {_num(b['ram'])}", "", style="bold")  # fmt: skip
    return table


def gemini(data: Data) -> RenderableType:
    paused = f"; PAUSED for {data['paused_for_s']:.1f} s" if data["paused_for_s"] else ""
    return Text(
        f"Gemini, trailing minute: {data['requests']}/{data['max_requests']} requests"
        f" ({data['rpm_percent']:g} % of RPM), {data['tokens']:,}/{data['max_tokens']:,} tokens"
        f" ({data['tpm_percent']:g} % of TPM){paused}",
        style="yellow" if paused else "",
    )


def limits(data: Data) -> RenderableType:
    prefect, allocation = data["prefect"], data["allocation"]
    table = Table("limit", "in Prefect", "allocation", title="Pool and queue limits")
    split = allocation if isinstance(allocation, dict) and "down" not in allocation else {}
    planned = {"index": split.get("indexWorkers"), "acte": split.get("acteWorkers"),
               "ocr": split.get("totalWorkers")}  # fmt: skip
    labels = {"registre": "pool registre", "ocr": "pool ocr", "index": "queue ocr/index",
              "acte": "queue ocr/acte"}  # fmt: skip
    for name, label in labels.items():
        value = "?" if "down" in prefect else prefect[name]
        table.add_row(label, str(value), "-" if planned.get(name) is None else str(planned[name]))
    notes = [_down("limits", prefect), _down("allocation", allocation)]
    if allocation is None:
        notes.append(Text("no allocation written yet (worker_pool:allocation): no rebalance ran"))
    return Group(table, *filter(None, notes))


def _per_env(
    data: Data, title: str, columns: list[str | Column], rows: Callable[[Any], list]
) -> Group:
    table = Table("environment", *columns, title=title)
    notes = []
    for env, env_data in data.items():
        if down := _down(env, env_data):
            notes.append(down)
            continue
        for row in rows(env_data):
            table.add_row(env, *row)
    shown = table if table.row_count else Text(f"{title}: none", style="green")
    return Group(shown, *notes)


def _period(data: Data) -> str:
    days = data["days"]
    return "today (UTC)" if days == 1 else f"last {days} days (UTC, today included)"


def queue(data: Data) -> RenderableType:
    envs = data["environments"]
    sources = list(SOURCES)
    for env_data in envs.values():
        if "rows" in env_data:
            sources += [r["source"] for r in env_data["rows"] if r["source"] not in sources]
    period = _period(data)

    def rows(found: Data) -> list[list[str]]:
        by_status: dict[str, dict[str, int]] = {}
        for c in found["rows"]:
            label = f"{c['status']}, {period}" if c["finished"] else c["status"]
            by_status.setdefault(label, {})[c["source"]] = c["rows"]
        table = [
            [status, *(f"{per[s]:,}" if s in per else "" for s in sources),
             f"{sum(per.values()):,}"]
            for status, per in by_status.items()
        ]  # fmt: skip
        estimate = found["estimated_total_rows"]
        every = "all rows, every status, all time"
        said = (
            f"≈ {estimate:,} (estimate)" if estimate is not None else "no estimate yet (no ANALYZE)"
        )
        return [*table, [f"{every}: {said}", *([""] * len(sources)), ""]]

    title = f"Queue (live rows; done and error {period})"
    return _per_env(envs, title, ["status", *(s or "(none)" for s in sources), "total"], rows)


def _document(row: Data) -> str:
    return f"{row['source'] or '-'} {row['number'] or '-'}"


def _run(run: Data | None) -> str:
    if run is None:
        return "(not a deployment's run)"
    return f"{run['state'] or 'state unknown'}: {run['name'] or run['id']}"


def held(data: Data) -> RenderableType:
    def rows(found: list[Data]) -> list[list[str]]:
        return [
            [_document(r), r["stage"], f"{r['held_s'] // 60} min", r["owner"], _run(r["run"])]
            for r in found
        ]

    title = f"Held longer than {data['longer_than_s'] / 60:g} min"
    columns = ["document", "stage", "held", Column("owner (flow run id)", overflow="fold"),
               Column("run in Prefect", overflow="fold")]  # fmt: skip
    group = _per_env(data["environments"], title, columns, rows)
    prefect = _down("run states (Prefect)", data["prefect"])
    return Group(group, prefect) if prefect else group


def errors(data: Data) -> RenderableType:
    def rows(found: list[Data]) -> list[list[str]]:
        return [
            [_ago(r["when"]), _document(r), r["stage"], (r["message"] or "")[:MESSAGE_CHARS]]
            for r in found
        ]

    columns = ["when", "document", "stage", Column("message", ratio=1)]
    return _per_env(data, "Last errors", columns, rows)


def costs(data: Data) -> RenderableType:
    def rows(day: Data) -> list[list[str]]:
        tokens = ", ".join(
            f"{model} {t['input_tokens']:,} in / {t['output_tokens']:,} out"
            for model, t in day["tokens"].items()
        )
        return [
            [str(day["documents"]), f"{day['downloads']}, {day['reused']} reused",
             f"${day['registry_usd']:.2f}", f"${day['gemini_usd']:.2f}",
             f"${day['total_usd']:.2f}", tokens or "-"]
        ]  # fmt: skip

    columns = ["documents", "downloads", "registry", "Gemini", "total", Column("tokens", ratio=1)]
    caps = [Text(cap, style="red") for day in data.values() for cap in day.get("caps_reached", [])]
    return Group(_per_env(data, "Today's cost (UTC)", columns, rows), *caps)


RENDERERS: dict[str, Callable[[Any], RenderableType]] = {
    "capacity": capacity,
    "gemini": gemini,
    "limits": limits,
    "queue": queue,
    "held": held,
    "errors": errors,
    "costs": costs,
}


def render(found: Data) -> Group:
    parts: list[RenderableType] = [Text(f"registre status at {found['generated_at']}", "bold")]
    for name in (name for name in SECTIONS if name in found):
        parts.append(_down(name, found[name]) or RENDERERS[name](found[name]))
    return Group(*parts)


@contextmanager
def _silenced(name: str) -> Iterator[None]:
    """The logger quiet for the screen's time only (the CLI tests run it in-process)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def show(
    settings: Settings,
    *,
    as_json: bool = False,
    watch: bool = False,
    interval_s: float = 5,
    held_expected_s: float = HELD_EXPECTED_S,
    days: int = 1,
    sections: Iterable[str] = SECTIONS,
    console: Console | None = None,
) -> None:
    """Print the screen (or its JSON) once, or refresh it in place every `interval_s` until
    Ctrl-C."""
    console = console or Console()
    sections = tuple(sections)  # read at every refresh
    # A source that is down is said once on the screen; the queue's own retry warnings and
    # "its rows wait" errors, meant for the workers' logs, would scroll it away.
    with _silenced("tasks.queue.table"), Sources.open(settings, held_expected_s, days) as src:
        if as_json:
            document = json.dumps(snapshot(src, sections), indent=2, ensure_ascii=False)
            sys.stdout.write(document + "\n")
            return

        def screen() -> Group:
            return render(snapshot(src, sections))

        if not watch:
            console.print(screen())
            return
        with (
            suppress(KeyboardInterrupt),
            Live(screen(), console=console, auto_refresh=False) as live,
        ):
            while True:  # until Ctrl-C, which is how a watch ends
                time.sleep(interval_s)
                live.update(screen(), refresh=True)
