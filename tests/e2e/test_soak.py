"""The soak at the test suite's size (bench/soak.py's defaults run 2 hours): 5 minutes of
documents through the whole stack, every sampled quantity within its bounds, throughput kept,
nothing lost or processed twice."""

from __future__ import annotations

import time

import pytest

# 5 minutes of stream, the stack's start and the drain: about 10 minutes on a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_a_five_minute_soak_grows_nothing_and_loses_nothing(capsys, bench_module):
    soak = bench_module("soak")
    began = time.monotonic()
    # a document every 30 s: a loaded 2-core machine finishes 1 to 3 a minute (20 s is the
    # default, for a quiet one)
    code = soak.main(["--minutes", "5", "--every-seconds", "30", "--sample-seconds", "20",
                      "--drain-minutes", "8"])  # fmt: skip
    out = capsys.readouterr().out
    with capsys.disabled():
        print(out, f"\nthe soak test took {time.monotonic() - began:.0f} s")
    failed = [line for line in out.splitlines() if line.startswith("FAIL ")]
    # the failures first: a long message is cut in the middle where CI shows it
    assert code == 0, "\n".join(failed) + "\n\n" + out[-6000:]
    assert out.splitlines()[-1] == "OK"
