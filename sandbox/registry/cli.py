from __future__ import annotations

import json
from typing import Annotated

import typer

from sandbox.registry.server import run

app = typer.Typer(
    help="Stand-in for the Registre foncier du Québec en ligne.", no_args_is_help=True
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 8401,
    latency_s: Annotated[float, typer.Option(help="Seconds added to every page")] = 0.0,
    download_mode: Annotated[str, typer.Option(help="attachment | inline")] = "attachment",
    faults: Annotated[str | None, typer.Option(help="More faults, as a JSON object")] = None,
) -> None:
    """Serve the site at http://HOST:PORT/Sirf/ (control endpoints under /_sandbox/)."""
    initial = {"latency_s": latency_s, "download_mode": download_mode}
    initial.update(json.loads(faults) if faults else {})
    typer.echo(f"registry stand-in on http://{host}:{port}/Sirf/")
    run(host, port, initial)


@app.callback()
def main() -> None:
    """Keeps `serve` a named sub-command when this app is mounted under another CLI."""
