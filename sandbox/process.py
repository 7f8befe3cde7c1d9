from __future__ import annotations

import subprocess

STOP_TIMEOUT_S = 10.0


def stop(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Terminate a stand-in's process, killing it if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
