"""The `registre` command line: the root app, its options, and where each command group comes
from (one module per group in this package)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from deployments.cli import capacity, config, hosts, image, queue, stand_ins

# markdown: docstrings wrapped at 100 columns read as paragraphs, not as broken lines
app = typer.Typer(
    help="registre-flows: Quebec land-registry documents to text, on Prefect.",
    rich_markup_mode="markdown",
)
# A Typer added without a name gives the root its commands. The help lists them in this order,
# then the groups.
app.add_typer(queue.commands)  # retry
app.add_typer(hosts.commands)  # deploy, worker, up, status
app.add_typer(stand_ins.commands)  # sandbox
app.add_typer(config.db_app, name="db")
app.add_typer(queue.queue_app, name="queue")
app.add_typer(config.config_app, name="config")
app.add_typer(capacity.capacity_app, name="capacity")
app.add_typer(image.image_app, name="image")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # one line per HTTP request drowns what the host is doing
        logging.getLogger("httpx").setLevel(logging.WARNING)
