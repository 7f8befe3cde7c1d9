from __future__ import annotations

import os
import socket
from typing import Annotated

import typer
import uvicorn

from sandbox.gemini import API_KEY_ENV
from sandbox.gemini.server import Config, create_app

__all__ = ["app"]

app = typer.Typer(help="The Gemini API stand-in (test equipment).", no_args_is_help=True)


@app.callback()
def main() -> None:
    """The Gemini API stand-in."""


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    rpm: Annotated[int, typer.Option(help="requests per model per window")] = 1600,
    tpm: Annotated[int, typer.Option(help="input tokens per model per window")] = 6_400_000,
    window_s: Annotated[float, typer.Option(help="the trailing window, seconds")] = 60.0,
    fd: Annotated[int | None, typer.Option(help="serve on this inherited socket")] = None,
    catalogue: Annotated[bool, typer.Option(help="know the registry catalogue's pages")] = True,
) -> None:
    """Serve the stand-in. The API key it accepts comes from SANDBOX_GEMINI_API_KEY."""
    api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        raise typer.BadParameter(f"set {API_KEY_ENV} to the API key the stand-in should accept")
    config = Config(api_key=api_key, rpm=rpm, tpm=tpm, window_s=window_s, load_catalogue=catalogue)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="warning", access_log=False)
    )
    if fd is None:
        server.config.host, server.config.port = host, port
        server.run()
    else:
        server.run(sockets=[socket.socket(fileno=fd)])
