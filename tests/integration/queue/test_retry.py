from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasks.queue.client import QueueError
from tasks.queue.jobs import Stage
from tasks.queue.statuses import NOTAFLOW, SEED
from tasks.queue.table import Queue

FAILED = """
    INSERT INTO extraction_queue (document_source, document_number, circonscription_fonciere,
        cadastre, status_id, attemtps, ocr_attempts, error_message, ocr_error, supabase_path,
        worker_id, lease_owner, lease_stage, lease_expires_at, updated_at, retry_after)
    VALUES (%s, %s, 'Montréal', 'Cadastre du Québec', %s, %s, %s, %s, %s, %s, %s, %s, %s,
            now() + make_interval(secs => %s), now() - make_interval(secs => %s), now())
    RETURNING id
"""


def failed(
    project: Any,
    *,
    number: str = "1 234 567",
    status: int = SEED.error,
    message: str | None = "the registry answered 500",
    ocr_error: str | None = None,
    path: str | None = None,
    attempts: int = 3,
    ocr_attempts: int = 0,
    lease_owner: str | None = "registre-run-1",
    lease_in_s: float | None = None,
    failed_s_ago: float = 60,
    source: str = "index",
) -> str:
    """A row as registre_fail_v1 leaves it: in error, lease owner kept, no lease time."""
    stage = "ocr" if ocr_error else "registre"
    rows = project.sql(FAILED, (source, number, status, attempts, ocr_attempts, message,
                                ocr_error, path, lease_owner, lease_owner, stage, lease_in_s,
                                failed_s_ago))  # fmt: skip
    return str(rows[0][0])


def row(project: Any, job_id: str) -> dict[str, Any]:
    cols = (
        "status_id",
        "attemtps",
        "ocr_attempts",
        "error_message",
        "ocr_error",
        "worker_id",
        "lease_owner",
        "lease_stage",
        "lease_expires_at",
        "retry_after",
        "supabase_path",
    )
    values = project.sql(f"SELECT {', '.join(cols)} FROM extraction_queue WHERE id = %s", (job_id,))
    return dict(zip(cols, values[0], strict=True))


@pytest.fixture
def prod(supabase_projects):
    return {"prod": supabase_projects["prod"]}


def test_a_failed_download_goes_back_to_waiting_and_is_claimed_again(prod, make_settings):
    project = prod["prod"]
    job_id = failed(project)
    queue = Queue(make_settings(prod))

    retried = queue.retry(ids=[job_id])

    (only,) = retried["prod"]
    assert (only.id, only.stage, only.status) == (job_id, Stage.REGISTRE, SEED.waiting)
    assert only.message == "the registry answered 500" and only.number == "1 234 567"
    after = row(project, job_id)
    assert after["status_id"] == SEED.waiting and after["attemtps"] == 0
    assert after["error_message"] is None and after["worker_id"] is None
    assert after["lease_owner"] is None and after["lease_stage"] is None
    assert after["retry_after"] is None
    (job,) = queue.claim(Stage.REGISTRE, 5, "registre-run-2")
    assert job.id == job_id


def test_a_failed_ocr_goes_back_to_ready_for_ocr_not_to_the_registry(prod, make_settings):
    project = prod["prod"]
    stored = failed(project, message=None, ocr_error="Gemini answered 503", path="index/a.pdf",
                    attempts=1, ocr_attempts=3)  # fmt: skip
    lost = failed(project, number="2", message=None, path=None,
                  ocr_error="invalid request: supabase_path is empty")  # fmt: skip
    queue = Queue(make_settings(prod))

    retried = {r.id: r for r in queue.retry()["prod"]}

    assert retried[stored].stage is Stage.OCR and retried[stored].status == SEED.ready_for_ocr
    after = row(project, stored)
    assert after["status_id"] == SEED.ready_for_ocr and after["ocr_attempts"] == 0
    assert after["attemtps"] == 1 and after["ocr_error"] is None
    assert after["supabase_path"] == "index/a.pdf"
    # no stored PDF: nothing to read, so it is downloaded again
    assert retried[lost].stage is Stage.REGISTRE and retried[lost].status == SEED.waiting
    assert retried[lost].message == "invalid request: supabase_path is empty"
    assert row(project, lost)["ocr_error"] is None
    (job,) = queue.claim(Stage.OCR, 5, "ocr-run")
    assert job.id == stored
    (job,) = queue.claim(Stage.REGISTRE, 5, "registre-run")
    assert job.id == lost


def test_only_rows_in_error_that_no_run_holds_are_touched(prod, make_settings):
    project = prod["prod"]
    waiting = failed(project, status=SEED.waiting, lease_owner=None)
    done = failed(project, status=SEED.done, message=None)
    downloading = failed(project, status=SEED.processing, lease_in_s=300)
    held = failed(project, lease_in_s=300)  # put in error by another program under a live lease
    stale = failed(project, lease_in_s=-30)  # its lease ran out long ago
    before = {i: row(project, i) for i in (waiting, done, downloading, held)}
    queue = Queue(make_settings(prod))

    retried = queue.retry(env="prod")

    assert [r.id for r in retried["prod"]] == [stale]
    assert {i: row(project, i) for i in before} == before
    assert row(project, stale)["status_id"] == SEED.waiting


def test_filters_by_id_date_stage_and_message(prod, make_settings):
    project = prod["prod"]
    old = failed(project, number="old", failed_s_ago=3 * 86400)
    not_found = failed(project, number="nf", message="Document not found: La fiche immobilière"
                       " demandée est inexistante")  # fmt: skip
    down = failed(project, number="down", message="the registry answered 503 Service Unavailable")
    ocr = failed(project, number="ocr", message=None, ocr_error="Gemini answered 503",
                 path="index/o.pdf")  # fmt: skip
    queue = Queue(make_settings(prod))

    def ids(**filters: Any) -> set[str]:
        return {r.id for r in queue.retry(dry_run=True, **filters)["prod"]}

    assert ids() == {old, not_found, down, ocr}
    assert ids(ids=[old, down]) == {old, down}
    assert ids(since=datetime.now(UTC) - timedelta(days=1)) == {not_found, down, ocr}
    assert ids(stage=Stage.OCR) == {ocr}
    assert ids(stage=Stage.REGISTRE) == {old, not_found, down}
    assert ids(message="503") == {down, ocr}
    assert ids(message="SERVICE unavailable") == {down}
    assert ids(message="%") == set()  # a plain substring, not a LIKE pattern
    assert ids(exclude="inexistant") == {old, down, ocr}
    assert ids(stage=Stage.REGISTRE, message="503", exclude="inexistant") == {down}
    # the dry runs changed nothing
    assert all(row(project, i)["status_id"] == SEED.error for i in (old, not_found, down, ocr))

    retried = queue.retry(message="503", stage=Stage.REGISTRE)
    assert [r.id for r in retried["prod"]] == [down]
    assert row(project, not_found)["status_id"] == SEED.error


def test_environments_are_counted_apart_and_one_can_be_chosen(supabase_projects, make_settings):
    prod, dev = supabase_projects["prod"], supabase_projects["dev"]
    prod_ids = {failed(prod, number=str(n)) for n in range(3)}
    dev_id = failed(dev)
    queue = Queue(make_settings(supabase_projects))

    only_dev = queue.retry(env="dev")
    assert {e: [r.id for r in rows] for e, rows in only_dev.items()} == {"dev": [dev_id]}
    everywhere = queue.retry()
    assert {e: {r.id for r in rows} for e, rows in everywhere.items()} == {
        "prod": prod_ids, "dev": set()
    }  # fmt: skip
    with pytest.raises(QueueError, match="'staging' is not enabled"):
        queue.retry(env="staging")


def test_concurrent_retries_put_each_row_back_once(prod, make_settings):
    project = prod["prod"]
    ids = {failed(project, number=str(n)) for n in range(200)}
    queues = [Queue(make_settings(prod)) for _ in range(6)]
    results: list[list[str]] = [[] for _ in queues]
    start = threading.Barrier(len(queues))

    def retry(i: int) -> None:
        start.wait()
        results[i] = [r.id for r in queues[i].retry(env="prod")["prod"]]

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(len(queues))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [job_id for result in results for job_id in result]
    assert sorted(every) == sorted(ids)
    assert project.sql("SELECT count(*) FROM extraction_queue WHERE status_id = %s",
                       (SEED.waiting,)) == [(200,)]  # fmt: skip


def test_the_notaflow_ids_are_used_under_that_mapping(prod, make_settings):
    project = prod["prod"]
    job_id = failed(project, status=NOTAFLOW.error, message=None, ocr_error="unreadable",
                    path="actes/x.pdf", source="acte")  # fmt: skip
    done = failed(project, status=NOTAFLOW.done, message=None)  # 5, the seed's error id
    queue = Queue(make_settings(prod, status_mapping="notaflow"))

    (retried,) = queue.retry(env="prod")["prod"]

    assert retried.id == job_id and retried.status == NOTAFLOW.ready_for_ocr == 3
    assert row(project, done)["status_id"] == NOTAFLOW.done


def test_a_retried_row_gets_a_new_run(prod, make_settings):
    """The dispatcher keys a run on the row's version: a retried row must not look dispatched."""
    project = prod["prod"]
    job_id = failed(project)
    queue = Queue(make_settings(prod))
    project.sql("UPDATE extraction_queue SET status_id = %s WHERE id = %s", (SEED.waiting, job_id))
    (before,) = queue.claimable(Stage.REGISTRE, None, 5)
    project.sql("UPDATE extraction_queue SET status_id = %s WHERE id = %s", (SEED.error, job_id))

    queue.retry(ids=[job_id])

    (after,) = queue.claimable(Stage.REGISTRE, None, 5)
    assert after.id == before.id and after.version != before.version


def test_rows_failed_by_the_workers_own_calls_are_retried(prod, make_settings):
    project = prod["prod"]
    project.sql(
        "INSERT INTO extraction_queue (document_source, document_number, cadastre)"
        " VALUES ('index', '1', 'CQ'), ('index', '2', 'CQ')"
    )
    queue = Queue(make_settings(prod))
    first, second = queue.claim(Stage.REGISTRE, 2, "registre-run")
    queue.fail(first, "Document not found: inexistante", permanent=True)
    queue.mark_downloaded(second, "index/2.pdf")
    (ocr,) = queue.claim(Stage.OCR, 1, "ocr-run")
    queue.fail(ocr, "Gemini answered 503", permanent=True)

    retried = {r.id: r for r in queue.retry(env="prod")["prod"]}

    assert retried[first.id].stage is Stage.REGISTRE and retried[ocr.id].stage is Stage.OCR
    assert row(project, first.id)["status_id"] == SEED.waiting
    assert row(project, ocr.id)["status_id"] == SEED.ready_for_ocr
    assert [j.id for j in queue.claim(Stage.OCR, 5, "ocr-run-2")] == [ocr.id]
    assert [j.id for j in queue.claim(Stage.REGISTRE, 5, "registre-run-2")] == [first.id]
