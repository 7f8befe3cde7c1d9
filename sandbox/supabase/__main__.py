from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .server import KEY_ENV, run

__all__ = ["main"]


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


if __name__ == "__main__":
    sys.exit(main())
