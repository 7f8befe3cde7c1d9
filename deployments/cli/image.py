"""`registre image build`: the Docker work pools' image (deployments/image.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from deployments.cli.shared import console

image_app = typer.Typer(help="The Docker work pools' image.", no_args_is_help=True)


@image_app.command("build")
def build_command(
    base: Annotated[
        str | None, typer.Option(help="the base image [python:3.11-slim-bookworm]")
    ] = None,
    local_base: Annotated[
        bool, typer.Option(help="a Debian base made here by mmdebstrap (no Docker Hub needed)")
    ] = False,
) -> None:
    """Build the image under a tag made of its inputs' content, or find it built, and print its
    name, for `registre deploy --docker --image NAME`."""
    from deployments.image import DEFAULT_BASE, ImageError, build

    if base and local_base:
        console.print("[red]--base or --local-base, not both[/red]")
        raise typer.Exit(2)
    try:
        name = build(base or DEFAULT_BASE, local=local_base)
    except ImageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print(name)
