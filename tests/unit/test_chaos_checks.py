"""The chaos run's and the soak's "nothing processed twice" check (bench/checks.py: duplicates)
on made-up counts: repeats within the runs that were Running are explained, beyond them not."""

from __future__ import annotations

from collections import Counter

import pytest


@pytest.fixture(scope="module")
def checks(bench_module):
    return bench_module("checks")


def run(checks, stage, *spans, completed=True):
    return checks.RunRecord(stage, completed, tuple(spans))


def test_a_document_asked_twice_may_be_downloaded_and_read_twice(checks):
    doc = checks.Document(("index", "1 234"), {"reg-1"}, {"reg-1#1", "reg-1#2"})
    runs = {
        "row-a": [run(checks, "registre", (0, 10)), run(checks, "ocr", (10, 20))],
        "row-b": [run(checks, "registre", (30, 40)), run(checks, "ocr", (40, 50))],
    }
    found = checks.duplicates([(doc, ["row-a", "row-b"])], runs, {"reg-1": 2},
                              Counter({"reg-1#1": 2, "reg-1#2": 2}))  # fmt: skip
    assert found.failures() == []
    assert (found.extra_downloads, found.extra_ocr) == (0, 0)


def test_a_retry_explains_a_second_download_but_nothing_explains_a_third(checks):
    doc = checks.Document(("acte", "9"), {"reg-9"}, {"Acte 9"})
    runs = {"row": [run(checks, "registre", (0, 5), (60, 70)), run(checks, "ocr", (70, 80))]}
    explained = checks.duplicates([(doc, ["row"])], runs, {"reg-9": 2}, Counter({"Acte 9": 1}))
    assert explained.failures() == [] and explained.extra_downloads == 1
    tripled = checks.duplicates([(doc, ["row"])], runs, {"reg-9": 3}, Counter({"Acte 9": 1}))
    assert tripled.unexplained == ["acte 9 (registre): 3 times, 2 runs"]


def test_two_runs_of_a_row_at_once_and_a_stage_completed_twice_fail(checks):
    doc = checks.Document(("plan_cadastraux", "7"), {"v1", "v2"}, set())
    runs = {"row": [run(checks, "registre", (0, 10)), run(checks, "registre", (5, 15))]}
    found = checks.duplicates([(doc, ["row"])], runs, {"v1": 1}, Counter())
    assert found.concurrent == ["plan_cadastraux 7 (registre, row row)"]
    assert found.completed_twice == ["plan_cadastraux 7 (registre, row row)"]
