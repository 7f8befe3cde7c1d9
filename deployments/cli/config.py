"""`registre config` and `registre db`: the configuration, and the schema of the environments'
databases."""

from __future__ import annotations

from typing import Annotated

import typer

from deployments.cli.capacity import capacity_checked
from deployments.cli.shared import console, settings_or_exit
from deployments.migrations import apply_migrations
from tasks.control.pools import OCR_POOL, REGISTRE_POOL

db_app = typer.Typer(help="The extraction_queue schema.")
config_app = typer.Typer(help="The configuration read from the environment and .env.")


@db_app.command("migrate")
def db_migrate(
    dsn: Annotated[str, typer.Option(help="PostgreSQL DSN of the environment's database")],
) -> None:
    """Apply supabase/migrations/*.sql (additive and idempotent), as `supabase db push` would."""
    for name in apply_migrations(dsn):
        console.print(f"applied {name}")


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and show what is enabled (secrets are never shown); check the
    counts against this host's budget as `registre up` would."""
    settings = settings_or_exit()
    envs = settings.environments()
    console.print(f"environments: {', '.join(e.name for e in envs) or 'none enabled'}")
    console.print(f"status mapping: {settings.status_mapping}")
    console.print(f"redis: {settings.redis_url.split('@')[-1]}")
    console.print(f"gemini key: {'set' if settings.gemini_api_key else 'missing'}")
    settings = capacity_checked(settings, (REGISTRE_POOL, OCR_POOL))  # what `registre up` runs
    console.print(
        f"runs on this host: {settings.worker_count} registre, {settings.ocr_worker_pool_size} OCR"
        f" (CAPACITY_OVERCOMMIT={settings.capacity_overcommit})"
    )
