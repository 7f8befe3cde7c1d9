from __future__ import annotations

import argparse
import json
from pathlib import Path

from sandbox.registry.faults import Faults
from sandbox.registry.server import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.registry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, default=None)
    parser.add_argument("--faults", default=None, help="JSON object of initial faults")
    args = parser.parse_args()
    faults = json.loads(args.faults) if args.faults else None
    try:
        Faults().update(faults or {})
    except ValueError as exc:
        parser.error(str(exc))
    run(args.host, args.port, faults, args.port_file)


if __name__ == "__main__":
    main()
