from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from sandbox.registry.catalogue import INDEX_DOCUMENTS
from tasks.queue.statuses import SEED

REGISTRE = str(Path(sys.executable).with_name("registre"))


@pytest.mark.slow
def test_registre_up_takes_a_request_through_download_and_ocr(pipeline, tmp_path):
    """The whole system as `scripts/run` starts it: pools, prefect.yaml deployments, process
    workers and the dispatcher, against the stand-ins and the test's Prefect server."""
    doc = INDEX_DOCUMENTS[2]
    job_id = pipeline.insert(
        "index",
        document_number=doc.lot,
        circonscription_fonciere=doc.circonscription,
        cadastre=doc.cadastre,
    )
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [REGISTRE, "up", "--run-dir", str(tmp_path)],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},  # the harness's server
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline and up.poll() is None:
            if pipeline.row(job_id)["status_id"] in (SEED.done, SEED.error):
                break
            time.sleep(2)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        log.close()
    row = pipeline.row(job_id)
    output = (tmp_path / "up.log").read_text()
    assert row["status_id"] == SEED.done, (row["error_message"], row["ocr_error"], output[-3000:])
    assert row["supabase_path"].startswith("index/")
    assert len(row["structured_content"]["pages"]) == len(doc.pages)
