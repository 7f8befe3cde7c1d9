from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from sandbox.process import stop

__all__ = ["API_KEY_ENV", "StandinError", "serve"]

API_KEY_ENV = "SANDBOX_GEMINI_API_KEY"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class StandinError(Exception):
    """The Gemini stand-in did not start."""


@contextmanager
def serve(
    api_key: str,
    rpm: int,
    tpm: int,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    window_s: float = 60.0,
    load_catalogue: bool = True,
) -> Iterator[str]:
    """Run the Gemini stand-in in a subprocess; yields its base URL, stops it afterwards.

    The listening socket is bound here and handed to the child, so port=0 needs no guessing and
    no port race. The key travels in the environment, never on the command line.
    """
    listener = socket.create_server((host, port))
    bound_host, bound_port = listener.getsockname()[:2]
    command = [
        sys.executable, "-m", "sandbox.gemini", "serve",
        "--fd", str(listener.fileno()),
        "--rpm", str(rpm), "--tpm", str(tpm), "--window-s", str(window_s),
    ]  # fmt: skip
    if not load_catalogue:
        command.append("--no-catalogue")
    env = {**os.environ, API_KEY_ENV: api_key}
    process = subprocess.Popen(command, env=env, pass_fds=(listener.fileno(),))
    listener.close()
    base_url = f"http://{bound_host}:{bound_port}"
    try:
        _wait_ready(base_url, process)
        yield base_url
    finally:
        stop(process, STOP_TIMEOUT_S)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StandinError(f"the Gemini stand-in exited with code {process.returncode}")
        try:
            if httpx.get(f"{base_url}/_sandbox/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise StandinError(f"the Gemini stand-in did not answer within {START_TIMEOUT_S:.0f} s")
