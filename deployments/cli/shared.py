"""What every `registre` command group uses: one console, and the settings or the queue, or exit 2
saying why they cannot be read."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from tasks.failures import ConfigError
from tasks.queue.table import Queue
from tasks.settings import Settings, get_settings

console = Console()


def queue_or_exit() -> Queue:
    try:
        return Queue(get_settings())
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def settings_or_exit(**environ: str | None) -> Settings:
    """The settings, after setting the given environment variables (None: left as they are)."""
    for name, value in environ.items():
        if value is not None:
            os.environ[name] = value  # the Prefect workers and their runs read it too
    try:
        return get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
