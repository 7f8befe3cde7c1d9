"""Each run loads only its stage: every library a flow module pulls in is paid at every run's
start, so a registre run must not load Gemini's SDK or the page renderers, an OCR run not the
browser, and the rebalance (the control plane, and the run hooks every run shares) none of them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OCR_LIBRARIES = {"google.genai", "pypdfium2", "PIL"}
BROWSER_LIBRARIES = {"playwright"}
FLOWS = ("flows.registre", "flows.ocr", "flows.rebalance")


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """The modules a fresh interpreter holds after importing each flow module (at once: each
    import costs seconds)."""
    code = "import json, sys, {}; print(json.dumps(sorted(sys.modules)))"
    started = {
        flow: subprocess.Popen(
            [sys.executable, "-c", code.format(flow)], stdout=subprocess.PIPE, text=True
        )
        for flow in FLOWS
    }
    out = {flow: process.communicate()[0] for flow, process in started.items()}
    assert all(process.returncode == 0 for process in started.values())
    return {flow: set(json.loads(text)) for flow, text in out.items()}


def test_a_registre_run_loads_the_browser_and_nothing_of_ocr(loaded: dict[str, set[str]]) -> None:
    assert loaded["flows.registre"] >= BROWSER_LIBRARIES
    assert not OCR_LIBRARIES & loaded["flows.registre"]


def test_an_ocr_run_loads_gemini_and_the_pages_and_no_browser(loaded: dict[str, set[str]]) -> None:
    assert loaded["flows.ocr"] >= OCR_LIBRARIES
    assert not BROWSER_LIBRARIES & loaded["flows.ocr"]


def test_the_control_plane_loads_neither(loaded: dict[str, set[str]]) -> None:
    assert not (OCR_LIBRARIES | BROWSER_LIBRARIES) & loaded["flows.rebalance"]
