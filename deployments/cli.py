from __future__ import annotations

import logging
import os
import sys
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from postgrest.exceptions import APIError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployments import capacity_cli
from deployments.migrations import apply_migrations
from tasks.capacity.budget import cost_table, settings_budget
from tasks.jobs import Stage
from tasks.planning import InsufficientCapacity, amount, check_capacity
from tasks.queue import Queue
from tasks.requests import (
    ACTE_TYPES,
    CIRCONSCRIPTIONS,
    SOURCES,
    InvalidRequest,
    check_circonscription,
    check_request,
)
from tasks.settings import ConfigError, Settings, get_settings
from tasks.statuses import status_label
from tasks.supabase_client import QueueError

# markdown: docstrings wrapped at 100 columns read as paragraphs, not as broken lines
app = typer.Typer(
    help="registre-flows: Quebec land-registry documents to text, on Prefect.",
    rich_markup_mode="markdown",
)
db_app = typer.Typer(help="The extraction_queue schema.")
queue_app = typer.Typer(help="The extraction_queue in every enabled environment.")
config_app = typer.Typer(help="The configuration read from the environment and .env.")
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")
app.add_typer(config_app, name="config")
app.add_typer(capacity_cli.app, name="capacity")
STAND_INS = ("supabase", "registry", "gemini")

console = Console()


def _queue() -> Queue:
    try:
        return Queue(get_settings())
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # one line per HTTP request drowns what the host is doing
        logging.getLogger("httpx").setLevel(logging.WARNING)


@db_app.command("migrate")
def db_migrate(
    dsn: Annotated[str, typer.Option(help="PostgreSQL DSN of the environment's database")],
) -> None:
    """Apply supabase/migrations/*.sql (additive and idempotent), as `supabase db push` would."""
    for name in apply_migrations(dsn):
        console.print(f"applied {name}")


def _capacity_checked(settings: Settings, pools: tuple[str, ...]) -> Settings:
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
        checked = check_capacity(
            budget,
            cost_table(settings),
            worker_count=settings.worker_count,
            ocr_pool_size=settings.ocr_worker_pool_size,
            min_index=settings.ocr_min_index_workers,
            min_acte=settings.ocr_min_acte_workers,
            pools=pools,
            overcommit=settings.capacity_overcommit,
        )
    except (ConfigError, InsufficientCapacity) as exc:
        # on stderr: `scripts/run` reads stdout of `config check`
        Console(stderr=True).print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for warning in checked.warnings:
        console.print(warning, style="yellow", markup=False, soft_wrap=True)
    update = {"worker_count": checked.worker_count, "ocr_worker_pool_size": checked.ocr_pool_size}
    return settings.model_copy(update=update)


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and show what is enabled (secrets are never shown); check the
    counts against this host's budget as `registre up` would."""
    from tasks.pools import OCR_POOL, REGISTRE_POOL

    try:
        settings = get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    envs = settings.environments()
    console.print(f"environments: {', '.join(e.name for e in envs) or 'none enabled'}")
    console.print(f"status mapping: {settings.status_mapping}")
    console.print(f"redis: {settings.redis_url.split('@')[-1]}")
    console.print(f"gemini key: {'set' if settings.gemini_api_key else 'missing'}")
    settings = _capacity_checked(settings, (REGISTRE_POOL, OCR_POOL))  # what `registre up` runs
    console.print(
        f"runs on this host: {settings.worker_count} registre, {settings.ocr_worker_pool_size} OCR"
        f" (CAPACITY_OVERCOMMIT={settings.capacity_overcommit})"
    )


@queue_app.command("counts")
def queue_counts() -> None:
    """Rows per status and document source in every environment."""
    queue = _queue()
    table = Table("environment", "status", "source", "rows")
    for env, counts in queue.counts().items():
        for (status, source), rows in sorted(counts.items(), key=lambda kv: str(kv[0])):
            label = f"{status_label(queue.statuses, status)} ({status})"
            table.add_row(env, label, escape(source or "-"), str(rows))
    console.print(table)
    for env, why in queue.unavailable.items():
        console.print(f"[red]{env}: not counted: {why}[/red]")


QUEUE_ADD_HELP = f"""Put a request into extraction_queue (what the operators' product does). It is
checked first as the claim checks it: a request the claim would refuse is refused here, with the
same message, and nothing is written.

Sources: {", ".join(SOURCES)} (an index or a plan needs --cadastre, an acte --acte-type).

Acte types: {", ".join(ACTE_TYPES)}.

Circonscriptions foncières (accents and case do not matter): {", ".join(CIRCONSCRIPTIONS)}."""


@queue_app.command("add", help=QUEUE_ADD_HELP)
def queue_add(
    source: Annotated[str, typer.Argument(help=" | ".join(SOURCES))],
    number: Annotated[str, typer.Option(help="lot number, or registration number for an acte")],
    circonscription: Annotated[str, typer.Option(help="circonscription foncière (listed above)")],
    cadastre: Annotated[str | None, typer.Option(help="required for index and plan")] = None,
    designation: Annotated[str | None, typer.Option(help="désignation secondaire")] = None,
    acte_type: Annotated[
        str | None, typer.Option(help=f"required for an acte: {', '.join(ACTE_TYPES)}")
    ] = None,
    env: Annotated[str | None, typer.Option(help="default: the first enabled")] = None,
) -> None:
    row = {"document_source": source, "document_number": number,
           "circonscription_fonciere": circonscription, "cadastre": cadastre,
           "designation_secondaire": designation, "acte_type": acte_type}  # fmt: skip
    try:
        check_request(row)
        check_circonscription(circonscription)
    except InvalidRequest as exc:
        console.print(f"[red]refused: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    queue = _queue()
    target = env or next(iter(queue.clients), None)
    if target is None:
        console.print("[red]no Supabase environment is configured[/red]")
        raise typer.Exit(2)
    values = {k: v.strip() if v else None for k, v in row.items()}
    try:
        request = queue.client(target).table("extraction_queue")
        inserted = request.insert({**values, "status_id": queue.statuses.waiting}).execute().data[0]
    except (QueueError, httpx.HTTPError, APIError) as exc:
        why = exc.message if isinstance(exc, APIError) else str(exc) or type(exc).__name__
        console.print(f"[red]{target}: not added: {escape(str(why))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{target}: request {inserted['id']} waiting")


@queue_app.command("recover")
def queue_recover() -> None:
    """Take back rows whose lease expired (their worker died), in every environment."""
    for env, rows in _queue().recover_expired().items():
        console.print(f"{env}: {len(rows)} row(s) taken back")


@app.command("retry")
def retry_command(
    ids: Annotated[list[str] | None, typer.Argument(help="ids of the rows to retry")] = None,
    env: Annotated[str | None, typer.Option(help="only this environment")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="only rows that failed since then (local time), e.g. 2026-12-01"),
    ] = None,
    stage: Annotated[
        Stage | None,
        typer.Option(
            help="only download failures (registre; an OCR failure without its stored PDF is"
            " one) or OCR failures (ocr)"
        ),
    ] = None,
    message: Annotated[
        str | None, typer.Option(help="only rows whose error contains this (any case)")
    ] = None,
    exclude: Annotated[
        str | None, typer.Option(help="leave rows whose error contains this, e.g. inexistant")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every failed row (needed when nothing narrows)")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be retried, change nothing")
    ] = False,
) -> None:
    """Put failed documents (status error) back into the queue, attempts reset: an OCR failure
    whose PDF is stored goes back to ready for OCR, any other failure is downloaded again. Rows
    a run still holds are left alone. Says how many per environment."""
    if not (ids or env or since or stage or message or every):
        console.print("[red]say which rows: ids, --env, --since, --stage, --message or --all[/red]")
        raise typer.Exit(2)
    wanted: list[str] = []
    for job_id in ids or []:
        try:
            wanted.append(str(uuid.UUID(job_id)))  # written as the database writes it
        except ValueError:
            console.print(f"[red]{escape(repr(job_id))} is not a row id (a UUID)[/red]")
            raise typer.Exit(2) from None
    queue = _queue()
    try:
        found = queue.retry(
            env=env, ids=wanted, since=since.astimezone() if since else None, stage=stage,
            message=message, exclude=exclude, dry_run=dry_run,
        )  # fmt: skip
    except QueueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    if dry_run:
        table = Table("environment")
        table.add_column("id", no_wrap=True, min_width=36)  # whole, to be pasted back
        for column in ("source", "number", "failed in", "failed at", "goes back to", "error"):
            table.add_column(column)
        for rows in found.values():
            for r in rows:
                table.add_row(r.env, r.id, escape(r.source), escape(r.number[:40]), r.stage,
                              r.failed_at[:19], status_label(queue.statuses, r.status),
                              escape(r.message[:120]))  # fmt: skip
        console.print(table)
    for name, rows in found.items():
        to = Counter(status_label(queue.statuses, r.status) for r in rows)
        where = ", ".join(f"{n} to {label}" for label, n in sorted(to.items()))
        verb = "would be retried" if dry_run else "retried"
        console.print(f"{name}: {len(rows)} {verb}" + (f" ({where})" if where else ""))
    missed = set(wanted) - {r.id for rows in found.values() for r in rows}
    if missed:
        console.print(f"not retried (not in error, held by a run, or in no enabled environment):"
                      f" {', '.join(sorted(missed))}")  # fmt: skip
    for name, why in queue.unavailable.items():
        console.print(f"[red]{name}: not retried: {escape(why)}[/red]")
    if queue.unavailable:
        raise typer.Exit(1)


def _settings(**environ: str | None) -> Settings:
    for name, value in environ.items():
        if value is not None:
            os.environ[name] = value  # the Prefect workers and their runs read it too
    try:
        return get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command("deploy")
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
    settings = _settings()
    try:
        deploy(settings, DockerOptions(**given) if docker else None)
    except (ValueError, ConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if docker:
        console.print("Docker pools and deployments are in place; hosts: see docs/docker.md")
    else:
        console.print("pools and deployments are in place; start hosts with `registre worker`")


@app.command("worker")
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
    settings = _capacity_checked(_settings(REGISTRE_HOST_ID=host_id), pools)
    try:
        run_host(settings, pools, run_dir)
    except (ConfigError, InsufficientCapacity, QueueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:  # Ctrl-C before the host was up: what it started is stopped
        console.print("stopped")


@app.command("up")
def up_command(
    run_dir: Annotated[Path, typer.Option(help="logs and state of this host")] = Path(".run"),
) -> None:
    """Run everything on this host: a Prefect server (unless PREFECT_API_URL is set), `registre
    deploy`, then `registre worker --pool all`. Ctrl-C stops it all, runs in progress first."""
    from deployments.up import up
    from deployments.worker import POOLS

    settings = _capacity_checked(_settings(), POOLS)
    try:
        up(settings, run_dir)
    except (ConfigError, InsufficientCapacity, QueueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
    console.print("stopped")


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="one machine-readable document")] = False,
    watch: Annotated[bool, typer.Option(help="refresh in place until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(min=1, help="seconds between refreshes")] = 5,
    held_minutes: Annotated[
        float, typer.Option(min=0, help="show rows held longer than this")
    ] = 15,
) -> None:
    """The operator's screen: capacity per host, Gemini usage, limits, the queue by status,
    documents held too long with their runs, the last errors. A source that is down is named
    on its section; the rest still shows."""
    from deployments.status_view import show

    if as_json and watch:
        console.print("[red]--json prints one document: use it without --watch[/red]")
        raise typer.Exit(2)
    show(_settings(), as_json=as_json, watch=watch, interval_s=interval,
         held_expected_s=held_minutes * 60)  # fmt: skip


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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


if __name__ == "__main__":
    app()
