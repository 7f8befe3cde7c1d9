from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import uvicorn

from sandbox.registry.app import create_app

__all__ = ["run"]


def run(
    host: str = "127.0.0.1",
    port: int = 0,
    faults: dict[str, Any] | None = None,
    port_file: Path | None = None,
) -> None:
    """Serve the site until interrupted; with port 0 the OS picks one, written to port_file."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    chosen = sock.getsockname()[1]
    if port_file is not None:
        partial = port_file.with_suffix(".tmp")
        partial.write_text(str(chosen))
        os.replace(partial, port_file)
    config = uvicorn.Config(
        create_app(faults),
        log_level="warning",
        access_log=False,
        # Hung downloads and never-ending pages must not hold up shutdown.
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run(sockets=[sock])
