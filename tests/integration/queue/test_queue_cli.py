from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from deployments.cli.shared import console
from tasks.queue.jobs import InvalidJob, Stage, parse_job
from tasks.queue.statuses import SEED
from tasks.queue.table import Queue
from tasks.request import ACTE_TYPES, CIRCONSCRIPTIONS

runner = CliRunner()


@pytest.fixture
def cli_envs(supabase_projects, monkeypatch):
    """`registre` sees prod and dev (the stand-ins); wide output, so that nothing wraps."""
    for env, project in supabase_projects.items():
        monkeypatch.setenv(f"{env.upper()}_SUPABASE_URL", project.url)
        monkeypatch.setenv(f"{env.upper()}_SUPABASE_SERVICE_KEY", project.service_key)
    monkeypatch.setenv("COLUMNS", "250")
    # the CLI's console takes COLUMNS when it is made, at import, if set then (pytest-xdist sets
    # it to the terminal's in its processes): sized here, and left to read COLUMNS again after
    console.width = 250
    yield supabase_projects
    console.width = None


def registre(*args: str) -> Any:
    return runner.invoke(app, list(args))


def rows(project: Any) -> list[tuple[Any, ...]]:
    return project.sql(
        "SELECT document_source, document_number, circonscription_fonciere, cadastre,"
        " acte_type, status_id FROM extraction_queue"
    )


INDEX = ["--number", "2 274 178", "--circonscription", "Shefford", "--cadastre", "CQ"]
ACTE = ["--number", "12 345 678", "--circonscription", "Montréal", "--acte-type", "Acte"]
REFUSED = [
    ("deed", INDEX, {"document_source": "deed"}),
    ("index", [*INDEX, "--number", "  "], {"document_number": "  "}),
    ("index", [*INDEX, "--number", "../../etc/passwd"], {"document_number": "../../etc/passwd"}),
    ("acte", [*ACTE, "--number", "7" * 5000], {"document_number": "7" * 5000}),
    ("acte", ACTE[:4], {"acte_type": None}),
    ("acte", [*ACTE, "--acte-type", "Bail"], {"acte_type": "Bail"}),
    ("plan_cadastraux", INDEX[:4], {"cadastre": None}),
]  # fmt: skip


@pytest.mark.parametrize(("source", "options", "columns"), REFUSED)
def test_queue_add_refuses_what_the_claim_refuses_with_its_message(cli_envs, source, options,
                                                                   columns):  # fmt: skip
    row = {"id": "x", "document_source": source, "document_number": options[1],
           "circonscription_fonciere": options[3], "cadastre": "Cadastre du Québec",
           "acte_type": "Acte", **columns}  # fmt: skip
    if source != "acte" and "--cadastre" not in options:
        row["cadastre"] = None
    with pytest.raises(InvalidJob) as claim:
        parse_job("prod", row, Stage.REGISTRE, "owner")

    result = registre("queue", "add", source, *options)

    assert result.exit_code == 2, result.output
    assert f"refused: {claim.value}" in " ".join(result.output.split())
    assert rows(cli_envs["prod"]) == [] and rows(cli_envs["dev"]) == []


def test_queue_add_refuses_an_unknown_circonscription(cli_envs):
    result = registre("queue", "add", "index", *INDEX[:2], "--circonscription", "Atlantide",
                      *INDEX[4:])  # fmt: skip
    assert result.exit_code == 2
    assert "circonscription_fonciere 'Atlantide' is not a circonscription" in result.output
    assert rows(cli_envs["prod"]) == []


def test_queue_add_writes_a_request_the_claim_takes(cli_envs, make_settings):
    result = registre("queue", "add", "acte", "--number", " 12 345 678 ", "--circonscription",
                      "montreal", "--acte-type", "Avis d'adresse", "--env", "dev")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert rows(cli_envs["dev"]) == [("acte", "12 345 678", "montreal", None, "Avis d'adresse",
                                      SEED.waiting)]  # fmt: skip
    assert f"dev: request {cli_envs['dev'].sql('SELECT id FROM extraction_queue')[0][0]}" in (
        result.output
    )
    (job,) = Queue(make_settings(cli_envs)).claim(Stage.REGISTRE, 1, "owner")
    assert job.env == "dev" and job.document_number == "12345678"


def test_queue_add_names_an_environment_that_is_not_enabled(cli_envs):
    result = registre("queue", "add", "index", *INDEX, "--env", "staging")
    assert result.exit_code == 1
    assert "staging: not added: environment 'staging' is not enabled" in result.output


def test_queue_add_help_lists_sources_acte_types_and_circonscriptions():
    result = registre("queue", "add", "--help")
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "index, acte, plan_cadastraux" in text
    assert all(t in text for t in ACTE_TYPES)
    assert all(c in text for c in CIRCONSCRIPTIONS)


def test_queue_counts_shows_status_names(cli_envs, monkeypatch):
    prod = cli_envs["prod"]
    for status in (SEED.waiting, SEED.waiting, SEED.ready_for_ocr, SEED.error):
        prod.sql("INSERT INTO extraction_queue (document_source, status_id) VALUES ('index', %s)",
                 (status,))  # fmt: skip

    result = registre("queue", "counts")

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert "prod waiting (1) index 2" in lines
    assert "prod ready for OCR (3) index 1" in lines
    assert f"prod error (5), since {today} UTC index 1" in lines  # finished today

    monkeypatch.setenv("STATUS_MAPPING", "notaflow")  # 5 is "done" there
    result = registre("queue", "counts")
    assert f"prod done (5), since {today} UTC index 1" in " ".join(
        result.output.replace("│", " ").split()
    )

    prod.sql("UPDATE extraction_queue SET updated_at = now() - interval '3 days'")
    result = registre("queue", "counts")  # finished rows of today only: none
    assert "done (5)" not in result.output and "waiting (1)" in result.output
    result = registre("queue", "counts", "--days", "4")
    assert "done (5)" in result.output


def failed(project: Any, number: str, *, ocr: bool = False) -> str:
    return str(project.sql(
        "INSERT INTO extraction_queue (document_source, document_number, cadastre, status_id,"
        " attemtps, error_message, ocr_error, supabase_path) VALUES ('index', %s, 'CQ', %s, 3,"
        " %s, %s, %s) RETURNING id",
        (number, SEED.error, None if ocr else "the registry answered 500",
         "Gemini answered 503" if ocr else None, "index/x.pdf" if ocr else None),
    )[0][0])  # fmt: skip


def statuses(project: Any) -> dict[str, int]:
    return {str(i): s for i, s in project.sql("SELECT id, status_id FROM extraction_queue")}


def test_retry_lists_then_puts_back_and_counts_per_environment(cli_envs):
    prod, dev = cli_envs["prod"], cli_envs["dev"]
    download, ocr = failed(prod, "111"), failed(prod, "222", ocr=True)
    dev_id = failed(dev, "333")

    refused = registre("retry")
    assert refused.exit_code == 2 and "say which rows" in refused.output

    listed = registre("retry", "--all", "--dry-run")
    assert listed.exit_code == 0, listed.output
    text = " ".join(listed.output.split())
    assert download in text and ocr in text and dev_id in text
    assert "Gemini answered 503" in text and "ready for OCR" in text
    assert "prod: 2 would be retried (1 to ready for OCR, 1 to waiting)" in text
    assert set(statuses(prod).values()) == {SEED.error}  # nothing changed

    done = registre("retry", "--env", "prod", "--stage", "ocr")
    assert done.exit_code == 0, done.output
    assert "prod: 1 retried (1 to ready for OCR)" in done.output
    assert statuses(prod) == {download: SEED.error, ocr: SEED.ready_for_ocr}

    again = registre("retry", download.upper(), dev_id, ocr)  # as an operator may paste it
    assert again.exit_code == 0, again.output
    assert "prod: 1 retried (1 to waiting)" in again.output
    assert "dev: 1 retried (1 to waiting)" in again.output
    assert f"not retried (not in error, held by a run, or in no enabled environment): {ocr}" in (
        " ".join(again.output.split())
    )
    assert statuses(dev) == {dev_id: SEED.waiting}


def test_retry_since_a_date_takes_local_dates(cli_envs):
    failed(cli_envs["prod"], "111")
    assert "prod: 1 would be" in registre("retry", "--since", "2000-01-01", "--dry-run").output
    assert "prod: 0 would be" in registre("retry", "--since", "2999-01-01", "--dry-run").output
    later = registre("retry", "--since", "2999-01-01 10:00:00", "--dry-run")
    assert later.exit_code == 0 and "prod: 0 would be" in later.output


def test_retry_refuses_an_id_that_is_not_one(cli_envs):
    result = registre("retry", "12; DROP TABLE extraction_queue")
    assert result.exit_code == 2 and "is not a row id" in result.output
