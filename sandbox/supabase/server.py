from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

import uvicorn

from .app import create_app

__all__ = ["KEY_ENV", "READY_PREFIX", "main", "run"]

KEY_ENV = "SANDBOX_SUPABASE_SERVICE_KEY"
# The first line on stdout; the parent reads the chosen port from it.
READY_PREFIX = "sandbox-supabase listening on "


def run(
    dsn: str, service_key: str, storage_dir: Path, host: str = "127.0.0.1", port: int = 0
) -> None:
    """Serve until interrupted; binds first so that port 0 can be reported before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted sockets: without it uvicorn's separate header and body writes meet
    # the client's delayed ACK and every response waits ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"{READY_PREFIX}http://{shown_host}:{bound_port}", flush=True)
    config = uvicorn.Config(
        create_app(dsn, service_key, storage_dir),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.supabase",
        description=f"The Supabase stand-in; the service key comes from ${KEY_ENV}.",
    )
    parser.add_argument("--dsn", required=True, help="PostgreSQL connection string")
    parser.add_argument("--storage-dir", required=True, type=Path, help="where objects are kept")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    service_key = os.environ.get(KEY_ENV)
    if not service_key:
        parser.error(f"set the service key in ${KEY_ENV}")
    run(args.dsn, service_key, args.storage_dir, args.host, args.port)
