from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .server import KEY_ENV, run

__all__ = ["app"]

app = typer.Typer(help="The local Supabase stand-in (PostgREST and Storage on a real PostgreSQL).")


@app.command()
def serve(
    dsn: Annotated[str, typer.Option(help="PostgreSQL connection string to serve")],
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 54321,
    storage_dir: Annotated[Path, typer.Option(help="where objects are kept")] = Path(
        ".sandbox/supabase-storage"
    ),
    host: str = "127.0.0.1",
) -> None:
    """Serve /rest/v1 and /storage/v1; the service key comes from $SANDBOX_SUPABASE_SERVICE_KEY."""
    service_key = os.environ.get(KEY_ENV)
    if not service_key:
        raise typer.BadParameter(f"set the service key in ${KEY_ENV}")
    run(dsn, service_key, storage_dir, host, port)
