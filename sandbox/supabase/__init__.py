from __future__ import annotations

import http.client
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from sandbox.process import stop

from .server import KEY_ENV, READY_PREFIX, main

__all__ = ["KEY_ENV", "main", "serve", "start"]

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def _drain(stream: IO[str], lines: queue.Queue[str]) -> None:
    # Keep reading after the first line so the child can never block on a full pipe.
    for line in stream:
        lines.put(line)


def _read_url(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True).start()
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                raise RuntimeError(f"the stand-in exited with {process.returncode}") from None
            continue
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()
    raise TimeoutError("the stand-in did not report its address")


def _answers(url: str, service_key: str) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2.0)
    headers = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
    try:
        connection.request("GET", "/rest/v1/", headers=headers)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _wait_until_answering(
    url: str, service_key: str, process: subprocess.Popen[str], deadline: float
) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited with {process.returncode}")
        if _answers(url, service_key):
            return
        time.sleep(0.05)
    raise TimeoutError(f"the stand-in at {url} did not answer")


def start(
    dsn: str, service_key: str, storage_dir: Path, host: str = "127.0.0.1", port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """Start the stand-in in a subprocess and wait until it answers; returns it and its URL."""
    command = [sys.executable, "-m", "sandbox.supabase", "--dsn", dsn]
    command += ["--storage-dir", str(storage_dir), "--host", host, "--port", str(port)]
    env = {**os.environ, KEY_ENV: service_key}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        url = _read_url(process, deadline)
        _wait_until_answering(url, service_key, process, deadline)
    except BaseException:
        stop(process, STOP_TIMEOUT_S)
        raise
    return process, url


@contextmanager
def serve(
    dsn: str, service_key: str, storage_dir: Path, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run the stand-in in a subprocess; yields its base URL, e.g. `http://127.0.0.1:54321`."""
    process, url = start(dsn, service_key, storage_dir, host, port)
    try:
        yield url
    finally:
        stop(process, STOP_TIMEOUT_S)
