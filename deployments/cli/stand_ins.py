"""`registre sandbox NAME`: run one of the local stand-ins (Supabase, the registry, Gemini)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from deployments.cli.shared import console

STAND_INS = ("supabase", "registry", "gemini")

commands = typer.Typer()  # added to the root without a name: `registre sandbox`


@commands.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="supabase | registry | gemini")],
) -> None:
    """Run a local stand-in (test equipment), e.g. `registre sandbox registry --port 8100`;
    `registre sandbox NAME --help` lists its options."""
    if name not in STAND_INS:
        console.print(f"[red]unknown stand-in {name!r}: one of {', '.join(STAND_INS)}[/red]")
        raise typer.Exit(2)
    # a separate module run, so that production imports never load the stand-ins
    os.execv(sys.executable, [sys.executable, "-m", f"sandbox.{name}", *ctx.args])
