"""`registre deploy`, `worker`, `up` and `status`: set up the Prefect pools, run a host, watch
them all."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployments.cli.capacity import capacity_checked
from deployments.cli.shared import console, settings_or_exit
from tasks.control.planning import InsufficientCapacity
from tasks.failures import ConfigError
from tasks.queue.client import QueueError

commands = typer.Typer()  # added to the root without a name: these are root commands


@commands.command("deploy")
def deploy_command(
    docker: Annotated[
        bool, typer.Option("--docker", help="Docker pools: each run is a container of the image")
    ] = False,
    image: Annotated[
        str | None, typer.Option(help="with --docker: the image [default: registre-flows:latest]")
    ] = None,
    env_file: Annotated[
        str | None,
        typer.Option(
            help="with --docker: the settings file on each Docker host, the runs' .env"
            " [default: /etc/registre/registre.env]"
        ),
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(help="with --docker: host, or a Docker network's name [default: host]"),
    ] = None,
) -> None:
    """Create or update the work pools (registre, ocr with queues index and acte, control), then
    `prefect deploy --all` from prefect.yaml. Once per Prefect server (PREFECT_API_URL).
    Process pools, or with --docker Docker pools (docs/docker.md)."""
    from deployments.deploy import deploy
    from deployments.docker import DockerOptions

    given = {"image": image, "env_file": env_file, "network": network}
    given = {name: value for name, value in given.items() if value is not None}
    if given and not docker:
        options = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        console.print(f"[red]{options}: only with --docker[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()
    try:
        deploy(settings, DockerOptions(**given) if docker else None)
    except (ValueError, ConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if docker:
        console.print("Docker pools and deployments are in place; hosts: see docs/docker.md")
    else:
        console.print("pools and deployments are in place; start hosts with `registre worker`")


@commands.command("worker")
def worker_command(
    pool: Annotated[str, typer.Option(help="registre | ocr | control | all")] = "all",
    host_id: Annotated[
        str | None, typer.Option(help="this host's name in the budgets [REGISTRE_HOST_ID]")
    ] = None,
    run_dir: Annotated[Path, typer.Option(help="logs of this host")] = Path(".run"),
) -> None:
    """Run one host: register its budget, start Prefect workers for POOL with limits from it,
    dispatch documents. Ctrl-C or SIGTERM: no new runs, runs in progress finish, then it stops
    (a second Ctrl-C stops the runs too)."""
    from deployments.worker import POOLS, run_host

    if pool != "all" and pool not in POOLS:
        console.print(f"[red]--pool must be one of {', '.join(POOLS)} or all[/red]")
        raise typer.Exit(2)
    pools = POOLS if pool == "all" else (pool,)
    settings = capacity_checked(settings_or_exit(registre_host_id=host_id), pools)
    try:
        run_host(settings, pools, run_dir)
    except (ConfigError, InsufficientCapacity, QueueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:  # Ctrl-C before the host was up: what it started is stopped
        console.print("stopped")


@commands.command("up")
def up_command(
    run_dir: Annotated[Path, typer.Option(help="logs and state of this host")] = Path(".run"),
) -> None:
    """Run everything on this host: a Prefect server (unless PREFECT_API_URL is set), `registre
    deploy`, then `registre worker --pool all`. Ctrl-C stops it all, runs in progress first."""
    from deployments.up import up
    from deployments.worker import POOLS

    settings = capacity_checked(settings_or_exit(), POOLS)
    try:
        up(settings, run_dir)
    except (ConfigError, InsufficientCapacity, QueueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
    console.print("stopped")


@commands.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="one machine-readable document")] = False,
    watch: Annotated[bool, typer.Option(help="refresh in place until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(min=1, help="seconds between refreshes")] = 5,
    held_minutes: Annotated[
        float, typer.Option(min=0, help="show rows held longer than this")
    ] = 15,
    days: Annotated[
        int, typer.Option(min=1, help="count the rows finished in the last N UTC days (1: today)")
    ] = 1,
) -> None:
    """The operator's screen: capacity per host, Gemini usage, limits, the queue by status (the
    live rows, and those finished today or in the last --days), documents held too long with
    their runs, the last errors. A source that is down is named on its section; the rest still
    shows."""
    from deployments.status_view import show

    if as_json and watch:
        console.print("[red]--json prints one document: use it without --watch[/red]")
        raise typer.Exit(2)
    show(settings_or_exit(), as_json=as_json, watch=watch, interval_s=interval,
         held_expected_s=held_minutes * 60, days=days)  # fmt: skip
