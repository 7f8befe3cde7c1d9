from __future__ import annotations

import datetime as dt
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from tasks import capacity
from tasks.capacity import WorkerKind
from tasks.ratelimit import GeminiLimiter
from tasks.settings import get_settings

app = typer.Typer(help="Capacity planning and live reservations.", no_args_is_help=True)


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


@app.command()
def plan(
    cpu: Annotated[float | None, typer.Option(help="host vCPUs [SERVER_MAX_CPU]")] = None,
    ram: Annotated[float | None, typer.Option(help="host RAM, GB [SERVER_MAX_RAM]")] = None,
    reserve_cpu: Annotated[
        float | None, typer.Option(help="CPU kept back, % [SERVER_RESERVE_CPU_PERCENT]")
    ] = None,
    reserve_ram: Annotated[
        float | None, typer.Option(help="RAM kept back, % [SERVER_RESERVE_RAM_PERCENT]")
    ] = None,
    registre: Annotated[int, typer.Option(min=0, help="registry download workers")] = 1,
    ocr: Annotated[int, typer.Option(min=0, help="OCR workers (half index, half acte)")] = 2,
) -> None:
    """Whether REGISTRE + OCR workers fit a host's budget, and the largest counts that do."""
    settings = get_settings()
    max_cpu = settings.server_max_cpu if cpu is None else cpu
    max_ram = settings.server_max_ram if ram is None else ram
    pct_cpu = settings.server_reserve_cpu_percent if reserve_cpu is None else reserve_cpu
    pct_ram = settings.server_reserve_ram_percent if reserve_ram is None else reserve_ram
    costs = capacity.cost_table(settings)
    budget = capacity.host_budget(max_cpu, max_ram, pct_cpu, pct_ram)
    result = capacity.plan_capacity(budget, costs, registre=registre, ocr=ocr)
    registre_each = costs[WorkerKind.REGISTRE]
    ocr_each = (costs[WorkerKind.INDEX_OCR] + costs[WorkerKind.ACTE_OCR]) * 0.5

    table = Table(title=f"Host {_num(max_cpu)} vCPU / {_num(max_ram)} GB")
    table.add_column("")
    table.add_column("vCPU", justify="right")
    table.add_column("RAM GB", justify="right")
    table.add_row(
        f"budget (reserve {_num(pct_cpu)} % / {_num(pct_ram)} %)",
        _num(budget.cpu),
        _num(budget.ram),
    )
    table.add_row(
        f"{registre} registre x {_num(registre_each.cpu)} / {_num(registre_each.ram)}",
        _num(registre_each.cpu * registre),
        _num(registre_each.ram * registre),
    )
    table.add_row(
        f"{ocr} OCR x {_num(ocr_each.cpu)} / {_num(ocr_each.ram)}",
        _num(ocr_each.cpu * ocr),
        _num(ocr_each.ram * ocr),
    )
    table.add_row("needed", _num(result.need.cpu), _num(result.need.ram), style="bold")
    table.add_row("% of budget", f"{result.cpu_percent:.0f} %", f"{result.ram_percent:.0f} %")
    console = Console()
    console.print(table)
    verdict = "[green]fits[/green]" if result.fits else "[red]does not fit[/red]"
    console.print(f"{registre} registre + {ocr} OCR: {verdict}")
    limits = Table(title="Largest counts that fit")
    limits.add_column("")
    limits.add_column("workers", justify="right")
    limits.add_row(f"registre, with {ocr} OCR", str(result.max_registre))
    limits.add_row(f"OCR, with {registre} registre", str(result.max_ocr))
    limits.add_row("registre alone", str(result.max_registre_alone))
    limits.add_row("OCR alone", str(result.max_ocr_alone))
    console.print(limits)
    if not result.fits:
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """Live hosts, the reservations they hold, and the Gemini usage of the trailing minute."""
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    state = capacity.CapacityManager.from_settings(settings, client).status()
    usage = GeminiLimiter.from_settings(settings, client).usage()
    console = Console()

    hosts = Table(title="Hosts (live budgets)")
    for column in ("host", "vCPU", "RAM GB"):
        hosts.add_column(column, justify="left" if column == "host" else "right")
    for host, budget in state.hosts.items():
        hosts.add_row(host, _num(budget.cpu), _num(budget.ram))
    hosts.add_row("total", _num(state.budget.cpu), _num(state.budget.ram), style="bold")
    console.print(hosts)

    workers = Table(title="Reservations (server:workers)")
    for column in ("worker", "type", "host", "vCPU", "RAM GB", "since"):
        workers.add_column(column, justify="right" if column in ("vCPU", "RAM GB") else "left")
    for w in state.workers:
        since = dt.datetime.fromtimestamp(float(w["startedAt"]), dt.UTC)  # type: ignore[arg-type]
        workers.add_row(
            str(w["workerId"]),
            str(w["type"]),
            str(w["host"]) or "-",
            _num(float(w["cpu"])),  # type: ignore[arg-type]
            _num(float(w["ram"])),  # type: ignore[arg-type]
            since.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    workers.add_row(
        "allocated", "", "", _num(state.allocated.cpu), _num(state.allocated.ram), "", style="bold"
    )
    console.print(workers)
    paused = f", paused {usage.paused_for_s:.1f} s" if usage.paused_for_s else ""
    console.print(
        f"Gemini, trailing minute: {usage.requests}/{usage.max_requests} requests,"
        f" {usage.tokens:,}/{usage.max_tokens:,} tokens{paused}"
    )
