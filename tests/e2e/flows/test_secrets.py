"""No secret leaves the process that holds it: after documents went through the deployed system
(downloads, failures with their evidence, OCR), the service keys, the Gemini key and the registry
passwords appear nowhere in the Prefect database (flow-run parameters, logs, artifacts, task runs),
the server's and the worker's logs, the stored evidence (screenshots, Playwright traces and their
DOM snapshots) or Redis."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sandbox.registry.catalogue import ACCOUNTS, ACTES, INDEX_DOCUMENTS
from tasks.queue.statuses import SEED
from tasks.settings import load_settings

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[0]
ACTE = next(a for a in ACTES if not a.paper_only)
SLOTS = {"SERVER_MAX_CPU": "20", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "2",
         "OCR_WORKER_POOL_SIZE": "2"}  # fmt: skip


def contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """A file's bytes, and each member of a zip (a Playwright trace) as well."""
    data = path.read_bytes()
    yield str(path), data
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member)


def leaks(secrets: dict[str, str], roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            for name, data in contents(path):
                found += [
                    f"{label} in {name}" for label, s in secrets.items() if s.encode() in data
                ]
    return found


def test_no_secret_reaches_prefect_logs_artifacts_or_evidence(system, gemini_key, tmp_path):
    pipeline = system.pipeline
    good = pipeline.insert(
        "index", document_number=INDEX.lot, circonscription_fonciere=INDEX.circonscription,
        cadastre=INDEX.cadastre, designation_secondaire=INDEX.designation,
    )  # fmt: skip
    missing = pipeline.insert(
        "index", document_number="9 999 999", circonscription_fonciere="Montréal",
        cadastre="Cadastre du Québec",
    )  # fmt: skip
    system.dev.sql(
        "INSERT INTO extraction_queue (document_source, document_number, circonscription_fonciere,"
        " acte_type) VALUES ('acte', %s, %s, %s)",
        (ACTE.numero, ACTE.circonscription, ACTE.type_document),
    )

    system.start_host("secrets", **SLOTS)
    system.wait(
        lambda: (
            pipeline.row(good)["status_id"] == SEED.done
            and pipeline.row(missing)["status_id"] == SEED.error
            and system.dev.sql("SELECT status_id FROM extraction_queue")[0][0] == SEED.done
        ),
        300,
        "the documents done and the missing one in error",
    )
    system.stop_host("secrets")

    secrets = {
        "prod service key": pipeline.project.service_key,
        "dev service key": system.dev.service_key,
        "Gemini key": gemini_key,
        **{f"password of {a.username}": a.password for a in ACCOUNTS},
    }
    prefect_home = Path(os.environ["PREFECT_HOME"])
    roots = [prefect_home, system.run_dir, pipeline.project.storage_dir, system.dev.storage_dir]
    stored = [p.read_bytes()[:8] for p in pipeline.project.storage_dir.rglob("*") if p.is_file()]
    traces = [head for head in stored if head.startswith(b"PK\x03\x04")]
    assert traces, "no trace stored: the scan would prove nothing"
    assert any(head.startswith(b"\x89PNG") for head in stored), "no screenshot stored"
    assert any(p.name.startswith("prefect.db") for p in prefect_home.iterdir())

    assert leaks(secrets, roots) == []
    client = redis.Redis.from_url(load_settings().redis_url)
    try:
        prefix = load_settings().redis_key_prefix
        values = [client.dump(key) or b"" for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        client.close()
    assert values, "nothing in Redis: the scan would prove nothing"
    assert [label for label, s in secrets.items() if any(s.encode() in v for v in values)] == []

    planted = tmp_path / "planted" / "trace.zip"  # the scan finds what it looks for
    planted.parent.mkdir()
    with zipfile.ZipFile(planted, "w", zipfile.ZIP_DEFLATED) as archive:  # as traces are
        archive.writestr("snapshot.html", f"<input value='{ACCOUNTS[0].password}'>")
    assert leaks(secrets, [planted.parent]) == [
        f"password of {ACCOUNTS[0].username} in {planted}!snapshot.html"
    ]
