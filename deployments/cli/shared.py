"""What every `registre` command group uses: one console, and the settings or the queue, or exit 2
saying why they cannot be read."""

from __future__ import annotations

import typer
from rich.console import Console

from tasks.failures import ConfigError
from tasks.queue.table import Queue
from tasks.settings import Settings, load_settings

console = Console()


def queue_or_exit() -> Queue:
    try:
        return Queue(load_settings())
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def settings_or_exit(**options: object) -> Settings:
    """The settings, the command's options (None: not given) over the environment's values."""
    try:
        return load_settings(
            **{name: value for name, value in options.items() if value is not None}
        )
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
