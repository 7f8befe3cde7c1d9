from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from supabase import ClientOptions, create_client

from tasks.queue.client import QueueError
from tasks.queue.jobs import InvalidJob, Stage, parse_job
from tasks.queue.statuses import NOTAFLOW, SEED
from tasks.queue.table import LeaseLost, Queue

INSERT = """
    INSERT INTO extraction_queue (document_source, document_number, circonscription_fonciere,
                                  cadastre, acte_type, status_id, created_at, max_attempts)
    SELECT %s, %s, 'Montréal', %s, %s, %s, now() + make_interval(secs => %s), %s
    RETURNING id
"""


def insert(
    project: Any,
    source: str = "index",
    number: str = "1 234 567",
    *,
    cadastre: str | None = "Cadastre du Québec",
    acte_type: str | None = None,
    status: int = 1,
    order: float = 0,
    max_attempts: int = 3,
) -> str:
    rows = project.sql(INSERT, (source, number, cadastre, acte_type, status, order, max_attempts))
    return str(rows[0][0])


def row(project: Any, job_id: str) -> dict[str, Any]:
    cols = (
        "status_id",
        "attemtps",
        "error_message",
        "lease_owner",
        "lease_expires_at",
        "ocr_attempts",
        "ocr_error",
        "worker_id",
        "supabase_path",
        "retry_after",
    )
    values = project.sql(f"SELECT {', '.join(cols)} FROM extraction_queue WHERE id = %s", (job_id,))
    return dict(zip(cols, values[0], strict=True))


@pytest.fixture
def prod(supabase_projects):
    return {"prod": supabase_projects["prod"]}


def test_claim_is_fifo_and_names_owner_and_lease(prod, make_settings):
    project = prod["prod"]
    late = insert(project, number="2", order=10)
    early = insert(project, number="1", order=0)
    queue = Queue(make_settings(prod))

    jobs = queue.claim(Stage.REGISTRE, 1, "owner-a")

    assert [j.id for j in jobs] == [early]
    assert jobs[0].env == "prod" and jobs[0].document_number == "1"
    claimed = row(project, early)
    assert claimed["status_id"] == SEED.processing
    assert claimed["lease_owner"] == "owner-a" and claimed["worker_id"] == "owner-a"
    assert claimed["lease_expires_at"] is not None
    assert row(project, late)["status_id"] == SEED.waiting


def test_environments_are_polled_prod_first(supabase_projects, make_settings):
    dev_id = insert(supabase_projects["dev"], number="dev", order=-100)
    prod_id = insert(supabase_projects["prod"], number="prod", order=0)
    queue = Queue(make_settings(supabase_projects))

    first = queue.claim(Stage.REGISTRE, 1, "o1")
    second = queue.claim(Stage.REGISTRE, 1, "o2")

    assert [(j.env, j.id) for j in first + second] == [("prod", prod_id), ("dev", dev_id)]


def test_a_lost_claim_answer_is_found_again_by_its_owner(prod, make_settings):
    project = prod["prod"]
    ids = {insert(project, number=str(n), order=n) for n in range(3)}
    queue = Queue(make_settings(prod))

    first = queue.claim(Stage.REGISTRE, 2, "owner-a")
    again = queue.claim(Stage.REGISTRE, 2, "owner-a")  # as if the first answer never arrived

    assert {j.id for j in again} == {j.id for j in first}
    rest = queue.claim(Stage.REGISTRE, 5, "owner-b")
    assert {j.id for j in rest} == ids - {j.id for j in first}


def test_sixteen_threads_claim_a_thousand_rows_across_two_environments_exactly_once(
    supabase_projects, make_settings
):
    expected = set()
    for env, project in supabase_projects.items():
        project.sql(
            "INSERT INTO extraction_queue (document_source, document_number, cadastre, status_id,"
            " created_at) SELECT 'index', g::text, 'Cadastre du Québec', 1,"
            " now() + make_interval(secs => g) FROM generate_series(1, 500) g"
        )
        expected |= {(env, str(r[0])) for r in project.sql("SELECT id FROM extraction_queue")}
    settings = make_settings(supabase_projects)
    claimed: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claimer(n: int) -> None:
        queue = Queue(settings)  # its own clients, like a separate worker process
        try:
            while True:
                owner = f"t{n}-{uuid.uuid4().hex[:6]}"
                jobs = queue.claim(Stage.REGISTRE, 1 + n % 5, owner)
                if not jobs:
                    return
                with lock:
                    claimed.extend((j.env, j.id, j.owner) for j in jobs)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)

    assert not errors
    counts = Counter((env, job_id) for env, job_id, _ in claimed)
    assert set(counts) == expected
    assert max(counts.values()) == 1
    for env, project in supabase_projects.items():
        owners = dict(project.sql("SELECT id::text, lease_owner FROM extraction_queue"))
        assert all(owners[j] == owner for e, j, owner in claimed if e == env)
        assert project.sql("SELECT count(*) FROM extraction_queue WHERE status_id <> 2") == [(0,)]


def test_expired_lease_is_recovered_and_the_old_owner_cannot_write(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod, queue_lease_seconds=1))
    (job,) = queue.claim(Stage.REGISTRE, 1, "slow-worker")
    queue.renew(job)  # still ours

    time.sleep(1.5)
    recovered = queue.recover_expired()

    assert [r["id"] for r in recovered["prod"]] == [job_id]
    after = row(project, job_id)
    assert after["status_id"] == SEED.waiting and after["attemtps"] == 1
    assert "lease expired" in after["error_message"] and after["lease_owner"] is None
    with pytest.raises(LeaseLost):
        queue.renew(job)
    with pytest.raises(LeaseLost):
        queue.complete(job, SEED.ready_for_ocr, {"supabase_path": "index/x.pdf"})
    assert queue.fail(job, "late failure", permanent=True) is None
    assert row(project, job_id)["status_id"] == SEED.waiting
    (again,) = queue.claim(Stage.REGISTRE, 1, "next-worker")
    assert again.id == job_id


def test_unexpired_leases_are_not_recovered(prod, make_settings):
    project = prod["prod"]
    insert(project)
    queue = Queue(make_settings(prod))
    queue.claim(Stage.REGISTRE, 1, "busy-worker")

    assert queue.recover_expired() == {"prod": []}


def test_transient_failures_exhaust_attempts_then_error_sticks(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project, max_attempts=3)
    queue = Queue(make_settings(prod))

    for attempt in range(1, 4):
        (job,) = queue.claim(Stage.REGISTRE, 1, f"w{attempt}")
        failed = queue.fail(job, f"timeout #{attempt}", permanent=False)
        assert failed is not None and failed["attemtps"] == attempt

    final = row(project, job_id)
    assert final["status_id"] == SEED.error and final["error_message"] == "timeout #3"
    assert queue.claim(Stage.REGISTRE, 1, "w4") == []
    # a repeated failure report (lost answer) changes nothing and returns the row as it is
    assert queue.fail(job, "repeated", permanent=False)["status_id"] == SEED.error
    assert row(project, job_id)["attemtps"] == 3


def test_permanent_failure_goes_straight_to_error(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod))
    (job,) = queue.claim(Stage.REGISTRE, 1, "w")

    queue.fail(job, "La fiche immobilière demandée est inexistante", permanent=True)

    after = row(project, job_id)
    assert after["status_id"] == SEED.error and after["attemtps"] == 1


def test_retry_delay_holds_the_row_back(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod))
    (job,) = queue.claim(Stage.REGISTRE, 1, "w")

    queue.fail(job, "registry answered 500", permanent=False, retry_delay_seconds=60)

    assert row(project, job_id)["status_id"] == SEED.waiting
    assert queue.claim(Stage.REGISTRE, 1, "w2") == []
    project.sql("UPDATE extraction_queue SET retry_after = now() - interval '1 s'")
    assert [j.id for j in queue.claim(Stage.REGISTRE, 1, "w3")] == [job_id]


def test_complete_only_while_owner_and_is_repeatable(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod))
    (job,) = queue.claim(Stage.REGISTRE, 1, "w")
    stranger = dataclasses.replace(job, owner="someone-else")

    with pytest.raises(LeaseLost):
        queue.complete(stranger, SEED.ready_for_ocr, {"supabase_path": "index/a.pdf"})
    done = queue.complete(job, SEED.ready_for_ocr, {"supabase_path": "index/a.pdf"})
    again = queue.complete(job, SEED.ready_for_ocr, {"supabase_path": "index/a.pdf"})

    assert done["status_id"] == again["status_id"] == SEED.ready_for_ocr
    after = row(project, job_id)
    assert after["supabase_path"] == "index/a.pdf" and after["lease_expires_at"] is None


def test_bad_rows_end_in_error_with_a_clear_message_and_good_rows_go_on(prod, make_settings):
    project = prod["prod"]
    bad = {
        insert(project, source="registre", order=1): "document_source 'registre' is not one of",
        insert(project, number="  ", order=2): "document_number is empty",
        insert(project, source="acte", cadastre=None, order=3): "acte_type is required",
        insert(project, source="index", cadastre=None, order=4): "cadastre is required",
        insert(project, source="acte", acte_type="Bail", order=5): "acte_type 'Bail' is not",
    }
    good = {
        insert(project, source="index", number="111", order=6),
        insert(project, source="acte", number="222", cadastre=None, acte_type="Acte", order=7),
        insert(project, source="plan_cadastraux", number="333", order=8),
    }
    queue = Queue(make_settings(prod))

    jobs = queue.claim(Stage.REGISTRE, 10, "w")

    assert {j.id for j in jobs} == good
    for job_id, reason in bad.items():
        after = row(project, job_id)
        assert after["status_id"] == SEED.error
        assert after["error_message"].startswith("invalid request: ")
        assert reason in after["error_message"]
    assert all(row(project, j)["status_id"] == SEED.processing for j in good)


def test_ocr_claims_take_downloaded_index_and_acte_only(prod, make_settings):
    project = prod["prod"]
    index_id = insert(project, status=SEED.ready_for_ocr, order=1)
    acte_id = insert(project, source="acte", acte_type="Acte", status=SEED.ready_for_ocr, order=2)
    plan_id = insert(project, source="plan_cadastraux", status=SEED.ready_for_ocr, order=3)
    waiting_id = insert(project, order=4)
    project.sql("UPDATE extraction_queue SET supabase_path = 'index/x.pdf'")
    queue = Queue(make_settings(prod))

    jobs = queue.claim(Stage.OCR, 10, "ocr-1")

    assert [j.id for j in jobs] == [index_id, acte_id]
    assert row(project, plan_id)["status_id"] == SEED.ready_for_ocr
    assert row(project, waiting_id)["status_id"] == SEED.waiting
    queue.fail(jobs[0], "Gemini answered 503", permanent=False)
    after = row(project, index_id)
    assert after["status_id"] == SEED.ready_for_ocr and after["ocr_attempts"] == 1
    assert after["ocr_error"] == "Gemini answered 503" and after["attemtps"] == 0


def test_counts_by_status_and_source(supabase_projects, make_settings):
    insert(supabase_projects["prod"], order=1)
    insert(supabase_projects["prod"], order=2)
    insert(supabase_projects["dev"], source="acte", acte_type="Acte", status=3)

    counts = Queue(make_settings(supabase_projects)).counts()

    assert counts == {"prod": {(1, "index"): 2}, "dev": {(3, "acte"): 1}}


def test_notaflow_mapping_uses_canonical_ids(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project, status=NOTAFLOW.ready_for_ocr)
    project.sql("UPDATE extraction_queue SET supabase_path = 'index/x.pdf'")
    queue = Queue(make_settings(prod, status_mapping="notaflow"))

    (job,) = queue.claim(Stage.OCR, 1, "ocr")
    assert row(project, job_id)["status_id"] == NOTAFLOW.ocr_processing == 6
    queue.fail(job, "unreadable", permanent=True)
    assert row(project, job_id)["status_id"] == NOTAFLOW.error == 4


def test_mapping_that_contradicts_the_database_is_refused(prod, make_settings):
    Queue(make_settings(prod)).check_status_names()  # a fresh database carries the seed names
    with pytest.raises(QueueError, match="STATUS_MAPPING=seed"):
        Queue(make_settings(prod, status_mapping="notaflow")).check_status_names()


def test_parse_job_normalises_the_number_and_defaults_the_circonscription():
    job = parse_job(
        "dev",
        {
            "id": "x",
            "document_source": "index",
            "document_number": "1 234 567",
            "cadastre": "Cadastre du Québec",
            "created_at": "t",
        },
        Stage.REGISTRE,
        "o",
    )
    assert job.document_number == "1234567" and job.circonscription == "Montréal"
    with pytest.raises(InvalidJob, match="plans cadastraux are not OCR'd"):
        parse_job(
            "dev",
            {
                "id": "x",
                "document_source": "plan_cadastraux",
                "document_number": "1",
                "cadastre": "c",
                "supabase_path": "p",
            },
            Stage.OCR,
            "o",
        )


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("../../etc/passwd", r"has characters no registry number has \(\. /\)"),
        ("1" * 5000, "is 5000 characters long .* at most 30"),
        ("1 234 567;DROP", "has characters .*;"),
    ],
)
def test_a_number_no_registry_number_looks_like_is_refused(number, message):
    row = {"id": "x", "document_source": "index", "document_number": number, "cadastre": "c"}
    with pytest.raises(InvalidJob, match=message):
        parse_job("dev", row, Stage.REGISTRE, "o")
    acte = {"id": "x", "document_source": "acte", "document_number": "P-12 345-A",
            "acte_type": "Acte"}  # fmt: skip
    assert parse_job("dev", acte, Stage.REGISTRE, "o").document_number == "P-12345-A"


def test_an_environment_with_a_wrong_key_waits_and_the_others_go_on(
    supabase_projects, make_settings, caplog
):
    prod, dev = supabase_projects["prod"], supabase_projects["dev"]
    insert(prod, number="1")
    insert(dev, number="2")
    wrong = dataclasses.replace(dev, service_key="not-the-key")
    queue = Queue(make_settings({"prod": prod, "dev": wrong}))

    rows = queue.claimable(Stage.REGISTRE, None, 10)
    counts = queue.counts()

    assert [r.number for r in rows] == ["1"] and list(counts) == ["prod"]
    assert "Invalid API key" in queue.unavailable["dev"]
    assert "check DEV_SUPABASE_URL and DEV_SUPABASE_SERVICE_KEY" in queue.unavailable["dev"]
    assert queue.held() == [] and list(queue.recover_expired()) == ["prod"]
    assert sum("dev: its rows wait" in r.message for r in caplog.records) == 1  # said once


def test_lease_keeper_keeps_a_long_run_from_being_recovered(prod, make_settings):
    from tasks.queue.row_lease import LeaseKeeper

    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod, queue_lease_seconds=1))
    (job,) = queue.claim(Stage.REGISTRE, 1, "long-runner")

    with LeaseKeeper(queue, job, interval_seconds=0.3) as keeper:
        time.sleep(2)
        assert queue.recover_expired() == {"prod": []}
        assert not keeper.lost.is_set()
    queue.complete(job, SEED.ready_for_ocr, {"supabase_path": "index/x.pdf"})
    assert row(project, job_id)["status_id"] == SEED.ready_for_ocr


def test_claim_a_given_row(supabase_projects, make_settings):
    insert(supabase_projects["dev"], number="first", order=0)
    wanted = insert(supabase_projects["dev"], number="second", order=1)
    queue = Queue(make_settings(supabase_projects))

    jobs = queue.claim(Stage.REGISTRE, 1, "o", env="dev", job_id=wanted)

    assert [(j.env, j.id) for j in jobs] == [("dev", wanted)]
    assert queue.claim(Stage.REGISTRE, 1, "o2", env="dev", job_id=wanted) == []


class DropsAnswers(httpx.HTTPTransport):
    """Sends each of the first `n` requests, then loses the answer like a dropped HTTP/2
    connection ("Server disconnected"): the server did the work, the client never hears of it."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.remaining = n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self.remaining > 0:
            self.remaining -= 1
            response.read()
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return response


def flaky_queue(project, settings, lost_answers: int) -> Queue:
    http = httpx.Client(transport=DropsAnswers(lost_answers), timeout=10)
    options = ClientOptions(httpx_client=http)
    return Queue(
        settings, clients={"prod": create_client(project.url, project.service_key, options)}
    )


def test_a_claim_whose_answer_is_lost_is_retried_and_finds_its_rows(prod, make_settings):
    project = prod["prod"]
    ids = {insert(project, number=str(n), order=n) for n in range(4)}
    queue = flaky_queue(project, make_settings(prod), lost_answers=1)

    jobs = queue.claim(Stage.REGISTRE, 2, "owner-a")

    assert len(jobs) == 2
    held = project.sql("SELECT id::text FROM extraction_queue WHERE lease_owner = 'owner-a'")
    assert {r[0] for r in held} == {j.id for j in jobs}  # nothing claimed twice or leaked
    rest = Queue(make_settings(prod)).claim(Stage.REGISTRE, 5, "owner-b")
    assert {j.id for j in rest} == ids - {j.id for j in jobs}


def test_writes_whose_answers_are_lost_are_applied_once(prod, make_settings):
    project = prod["prod"]
    done_id, failed_id = insert(project, order=0), insert(project, order=1)
    settings = make_settings(prod)
    claimed = {j.id: j for j in Queue(settings).claim(Stage.REGISTRE, 2, "w")}

    flaky_queue(project, settings, lost_answers=1).complete(
        claimed[done_id], SEED.ready_for_ocr, {"supabase_path": "index/a.pdf"}
    )
    flaky_queue(project, settings, lost_answers=1).fail(
        claimed[failed_id], "timeout", permanent=False
    )

    assert row(project, done_id)["status_id"] == SEED.ready_for_ocr
    failed = row(project, failed_id)
    assert failed["status_id"] == SEED.waiting and failed["attemtps"] == 1


def test_a_service_failure_gives_the_row_back_without_counting_an_attempt(prod, make_settings):
    project = prod["prod"]
    job_id = insert(project)
    queue = Queue(make_settings(prod))
    (job,) = queue.claim(Stage.REGISTRE, 1, "w")

    released = queue.release(job, "no registry account is free", retry_delay_seconds=60)

    after = row(project, job_id)
    assert released is not None and after["status_id"] == SEED.waiting
    assert after["attemtps"] == 0 and after["error_message"] == "no registry account is free"
    assert queue.claim(Stage.REGISTRE, 1, "w2") == []  # held back for the delay
    assert queue.counts(claimable=True) == {"prod": {}}
    assert queue.counts() == {"prod": {(SEED.waiting, "index"): 1}}
    assert queue.release(job, "again", retry_delay_seconds=60) is None  # no longer held
