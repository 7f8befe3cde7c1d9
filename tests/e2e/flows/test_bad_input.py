"""The bad-input corpus: every malformed request or stored file ends in the error status with a
message an operator understands, within a bounded time, while good documents beside it in the same
run go through, and an environment whose service key is wrong waits without stopping the others.
Runs the deployed system (`registre deploy`, one `registre worker` host) on the stand-ins."""

from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image

from sandbox.registry.catalogue import ACTES, INDEX_DOCUMENTS, PLANS, render_pdf
from tasks.queue.statuses import SEED

pytestmark = pytest.mark.slow

INDEX = INDEX_DOCUMENTS[0]
ACTE = next(a for a in ACTES if not a.paper_only)
PLAN = PLANS[0]
# 20 vCPU / 32 GB less 20 %: two registre runs beside the OCR minimums
TWO_SLOTS = {"SERVER_MAX_CPU": "20", "SERVER_MAX_RAM": "32", "WORKER_COUNT": "2",
             "OCR_WORKER_POOL_SIZE": "2"}  # fmt: skip
FINAL = (SEED.done, SEED.error)
BOUND_S = 420  # every document of the corpus is final within this


def index_request(**changes):
    return {"document_number": INDEX.lot, "circonscription_fonciere": INDEX.circonscription,
            "cadastre": INDEX.cadastre, "designation_secondaire": INDEX.designation,
            **changes}  # fmt: skip


def acte_request(**changes):
    return {"document_number": ACTE.numero, "circonscription_fonciere": ACTE.circonscription,
            "acte_type": ACTE.type_document, **changes}  # fmt: skip


def encrypted_pdf() -> bytes:
    """One page under the standard security handler with a user password that is not empty."""
    key = os.urandom(32).hex().encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (key, key[::-1]),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    file_id = os.urandom(16).hex().encode()
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n" % (
        len(objects) + 1, file_id, file_id,
    )  # fmt: skip
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def long_pdf(pages: int) -> bytes:
    images = [Image.new("L", (200, 260), 230) for _ in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=30)
    return out.getvalue()


# (what the operator sent, source, columns, what the message must say)
REQUESTS = [
    ("unknown document_source", "deed", index_request(), "document_source 'deed' is not one of"),
    ("empty number", "index", index_request(document_number="  "), "document_number is empty"),
    ("missing number", "index", index_request(document_number=None), "document_number is empty"),
    ("number with path characters", "index", index_request(document_number="../../etc/passwd"),
     "has characters no registry number has"),
    ("5,000-character number", "acte", acte_request(document_number="7" * 5000),
     "is 5000 characters long"),
    ("unknown circonscription", "index", index_request(circonscription_fonciere="Atlantide"),
     "Atlantide"),
    ("acte without its type", "acte", acte_request(acte_type=None), "acte_type is required"),
    ("plan without its cadastre", "plan_cadastraux",
     {"document_number": PLAN.lot, "circonscription_fonciere": PLAN.circonscription},
     "cadastre is required for a plan cadastral"),
]  # fmt: skip
HTML = b"<!DOCTYPE html><html><body><h1>Session expir\xc3\xa9e</h1></body></html>"
STORED = [
    ("stored file is an HTML page", "index", HTML, "not a readable PDF"),
    ("stored file is empty", "acte", b"", "is empty (0 bytes)"),
    ("stored PDF is truncated", "index", render_pdf(INDEX)[:700], "not a readable PDF"),
    ("stored PDF is encrypted", "acte", encrypted_pdf(), "password-protected"),
    ("stored PDF has 500 pages", "index", long_pdf(500), "has 500 pages, more than OCR_MAX_PAGES"),
]


def test_the_bad_input_corpus_ends_in_clear_errors_and_the_good_documents_go_on(
    system, staging_project, capsys
):
    pipeline = system.pipeline
    corpus = {}
    for what, source, columns, message in REQUESTS:
        corpus[pipeline.insert(source, **columns)] = (what, message)
    for what, source, content, message in STORED:
        columns = index_request() if source == "index" else acte_request()
        corpus[pipeline.downloaded(source, content, **columns)] = (what, message)
    good = [pipeline.insert("index", **index_request()), pipeline.insert("acte", **acte_request())]
    dev = system.dev.sql(
        "INSERT INTO extraction_queue (document_source, document_number, circonscription_fonciere,"
        " acte_type) VALUES ('acte', %s, %s, %s) RETURNING id",
        (ACTE.numero, ACTE.circonscription, ACTE.type_document),
    )[0][0]
    staging = staging_project.sql(
        "INSERT INTO extraction_queue (document_source, document_number, circonscription_fonciere,"
        " cadastre) VALUES ('index', %s, %s, %s) RETURNING id",
        (INDEX.lot, INDEX.circonscription, INDEX.cadastre),
    )[0][0]
    began = time.monotonic()

    system.start_host("corpus", **TWO_SLOTS, STAGING_SUPABASE_URL=staging_project.url,
                      STAGING_SUPABASE_SERVICE_KEY="wrong-service-key")  # fmt: skip
    everything = [*corpus, *good]

    def dev_status() -> int:
        return system.dev.sql("SELECT status_id FROM extraction_queue WHERE id = %s", (dev,))[0][0]

    system.wait(
        lambda: (
            dev_status() in FINAL and all(pipeline.row(i)["status_id"] in FINAL for i in everything)
        ),
        BOUND_S,
        "every document of the corpus in a final status",
    )
    elapsed = time.monotonic() - began

    table = []
    for job_id, (what, expected) in corpus.items():
        row = pipeline.row(job_id)
        message = row["error_message"] if row["ocr_error"] is None else row["ocr_error"]
        table.append((what, row["status_id"], message or ""))
        assert row["status_id"] == SEED.error, (what, row)
        assert expected in (message or ""), (what, message)
    for job_id in good:
        row = pipeline.row(job_id)
        assert row["status_id"] == SEED.done, (row["error_message"], row["ocr_error"])
    assert dev_status() == SEED.done
    # the environment Supabase refuses: its row waits, untouched, and the log says why, once
    assert staging_project.sql(
        "SELECT status_id, attemtps, lease_owner FROM extraction_queue WHERE id = %s", (staging,)
    ) == [(SEED.waiting, 0, None)]
    log = system.log("corpus")
    said = "staging: its rows wait: Supabase refused the request: Invalid API key"
    assert said in log and "check STAGING_SUPABASE_URL and STAGING_SUPABASE_SERVICE_KEY" in log
    assert "wrong-service-key" not in log
    with capsys.disabled():
        print(f"\nbad-input corpus: {len(corpus)} inputs final in {elapsed:.0f} s")
        print("| input | final status | message |\n|---|---|---|")
        for what, status, message in table:
            print(f"| {what} | {status} | {message[:160].replace('|', '/')} |")
