from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from sandbox.process import stop

__all__ = ["serve"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@contextmanager
def serve(
    host: str = "127.0.0.1", port: int = 0, faults: dict[str, Any] | None = None
) -> Iterator[str]:
    """Run the registry stand-in in a subprocess; yields its base URL (the site is at /Sirf/)."""
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        port_file = Path(tmp) / "port"
        command = [
            sys.executable,
            "-m",
            "sandbox.registry",
            "--host",
            host,
            "--port",
            str(port),
            "--port-file",
            str(port_file),
        ]
        if faults:
            command += ["--faults", json.dumps(faults)]
        process = subprocess.Popen(command, cwd=PROJECT_ROOT)
        try:
            base_url = _wait_until_ready(process, host, port_file)
            yield base_url
        finally:
            stop(process, STOP_TIMEOUT_S)


def _wait_until_ready(process: subprocess.Popen[bytes], host: str, port_file: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"registry stand-in exited with code {process.returncode}")
        if port_file.exists():
            base_url = f"http://{host}:{port_file.read_text()}"
            try:
                if httpx.get(f"{base_url}/_sandbox/health", timeout=1.0).status_code == 200:
                    return base_url
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"registry stand-in did not answer within {STARTUP_TIMEOUT_S} s")
