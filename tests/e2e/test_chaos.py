"""The chaos run at the test suite's size (bench/chaos.py has the large one): documents through
the whole stack while runs, workers, a host, Redis, Supabase, Gemini and the registry fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# its own run is bounded below (1,500 s); the suite-wide 600 s would cut a loaded machine short
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1600)]

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def test_a_small_chaos_run_on_a_postgresql_prefect_server_loses_and_duplicates_nothing(capsys):
    done = subprocess.run(
        [sys.executable, str(CHAOS), "--documents", "12", "--kills", "3", "--every", "15",
         "--wave-timeout", "900", "--prefect-on-postgres"],
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    with capsys.disabled():
        print(done.stdout[-4000:])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "OK" in done.stdout.splitlines()[-1]
