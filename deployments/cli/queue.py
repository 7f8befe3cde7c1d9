"""`registre queue` and `registre retry`: the extraction_queue in every enabled environment, its
counts, requests put in by hand, expired leases taken back, failed documents retried."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deployments.cli.shared import console, queue_or_exit
from tasks.queue.client import QueueError
from tasks.queue.jobs import Stage
from tasks.queue.statuses import status_label
from tasks.registry.matching import check_circonscription
from tasks.request import (
    ACTE_TYPES,
    CIRCONSCRIPTIONS,
    SOURCES,
    InvalidRequest,
    check_request,
)

queue_app = typer.Typer(help="The extraction_queue in every enabled environment.")
commands = typer.Typer()  # added to the root without a name: `registre retry`


@queue_app.command("counts")
def queue_counts(
    days: Annotated[
        int, typer.Option(min=1, help="count the rows finished in the last N UTC days (1: today)")
    ] = 1,
) -> None:
    """Live rows per status and document source in every environment, and the rows finished
    (done, error) today or in the last --days."""
    from deployments.status import finished_since

    queue = queue_or_exit()
    since = finished_since(days)
    table = Table("environment", "status", "source", "rows")
    finished = queue.finished_counts(since)
    for env, counts in queue.counts().items():
        for done, found in ((False, counts), (True, finished.get(env, {}))):
            for (status, source), rows in sorted(found.items(), key=lambda kv: str(kv[0])):
                label = f"{status_label(queue.statuses, status)} ({status})"
                label += f", since {since:%Y-%m-%d} UTC" if done else ""
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
    queue = queue_or_exit()
    target = env or next(iter(queue.environments), None)
    if target is None:
        console.print("[red]no Supabase environment is configured[/red]")
        raise typer.Exit(2)
    values = {k: v.strip() if v else None for k, v in row.items()}
    try:
        added = queue.add(target, values)
    except QueueError as exc:
        console.print(f"[red]{target}: not added: {escape(exc.reason)}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{target}: request {added} waiting")


@queue_app.command("recover")
def queue_recover() -> None:
    """Take back rows whose lease expired (their worker died), in every environment."""
    for env, rows in queue_or_exit().recover_expired().items():
        console.print(f"{env}: {len(rows)} row(s) taken back")


@commands.command("retry")
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
    queue = queue_or_exit()
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
