"""`registre capacity`: what a host of a given size can run, and the live reservations; and the
start-up check of the configured counts against this host's budget, which `config check`,
`worker` and `up` run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deployments.cli.shared import console
from tasks.control.planning import InsufficientCapacity, amount, settings_check
from tasks.coordination.capacity.budget import (
    WorkerKind,
    host_budget,
    plan_capacity,
)
from tasks.failures import ConfigError
from tasks.services import cost_table, settings_budget
from tasks.settings import Settings, load_settings

capacity_app = typer.Typer(help="Capacity planning and live reservations.", no_args_is_help=True)


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


@capacity_app.command()
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
    """Whether REGISTRE + OCR workers fit a host's budget, and the largest counts that do.
    Without --cpu / --ram: SERVER_MAX_CPU / SERVER_MAX_RAM, or when unset this machine's size."""
    settings = load_settings()
    max_cpu = settings.server_max_cpu if cpu is None else cpu
    max_ram = settings.server_max_ram if ram is None else ram
    cpu_origin = settings.size_origin("cpu") if cpu is None else "--cpu"
    ram_origin = settings.size_origin("ram") if ram is None else "--ram"
    pct_cpu = settings.server_reserve_cpu_percent if reserve_cpu is None else reserve_cpu
    pct_ram = settings.server_reserve_ram_percent if reserve_ram is None else reserve_ram
    costs = cost_table(settings)
    budget = host_budget(max_cpu, max_ram, pct_cpu, pct_ram)
    result = plan_capacity(budget, costs, registre=registre, ocr=ocr)
    registre_each = costs[WorkerKind.REGISTRE]
    ocr_each = (costs[WorkerKind.INDEX_OCR] + costs[WorkerKind.ACTE_OCR]) * 0.5

    screen = Console()  # its own, sized (COLUMNS) when the command runs
    screen.print(
        f"host: {_num(max_cpu)} vCPU ({cpu_origin}), {_num(max_ram)} GB ({ram_origin})",
        soft_wrap=True,
    )
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
    screen.print(table)
    verdict = "[green]fits[/green]" if result.fits else "[red]does not fit[/red]"
    screen.print(f"{registre} registre + {ocr} OCR: {verdict}")
    limits = Table(title="Largest counts that fit")
    limits.add_column("")
    limits.add_column("workers", justify="right")
    limits.add_row(f"registre, with {ocr} OCR", str(result.max_registre))
    limits.add_row(f"OCR, with {registre} registre", str(result.max_ocr))
    limits.add_row("registre alone", str(result.max_registre_alone))
    limits.add_row("OCR alone", str(result.max_ocr_alone))
    screen.print(limits)
    if not result.fits:
        raise typer.Exit(1)


@capacity_app.command()
def status() -> None:
    """Live hosts, the runs holding their capacity, and the Gemini usage of the trailing minute
    (the first sections of `registre status`)."""
    from deployments.status_view import show

    show(load_settings(), sections=("capacity", "gemini"))


def capacity_checked(settings: Settings, pools: tuple[str, ...]) -> Settings:
    """Say where this host's size comes from, then check the configured counts against its
    budget before anything starts: refused (exit 2), or with CAPACITY_OVERCOMMIT=reduce cut with
    a warning. The settings returned carry the counts to run."""
    budget = settings_budget(settings)
    console.print(
        f"host: {settings.host_size()}; budget {amount(budget.cpu)} vCPU /"
        f" {amount(budget.ram)} GB after the {settings.server_reserve_cpu_percent:g} % /"
        f" {settings.server_reserve_ram_percent:g} % reserve",
        soft_wrap=True,
    )
    try:
        checked = settings_check(settings, pools)
    except (ConfigError, InsufficientCapacity) as exc:
        # on stderr: `scripts/run` reads stdout of `config check`
        Console(stderr=True).print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for warning in checked.warnings:
        console.print(warning, style="yellow", markup=False, soft_wrap=True)
    update = {"worker_count": checked.worker_count, "ocr_worker_pool_size": checked.ocr_pool_size}
    return settings.model_copy(update=update)
