"""The extraction_queue in every enabled environment: claim, lease, settle and look at rows,
through the registre_* SQL functions (supabase/migrations). Every Supabase call of the project
goes through here (Storage through `storage(env)`), under one retry policy (client.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from supabase import Client

from tasks.failures import Fate, decide
from tasks.queue.buckets import Storage
from tasks.queue.client import QueueError, connect, with_network_retries
from tasks.queue.jobs import Claimable, Held, InvalidJob, Job, Retried, Stage, parse_job
from tasks.queue.statuses import LIVE, NAMES, StatusMap, status_map
from tasks.request import OCR_SOURCES
from tasks.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(QueueError):
    """The row is no longer held by this owner: its lease expired and it was taken back."""


class Queue:
    """`extraction_queue` in every enabled environment, polled in the order prod, staging, dev."""

    def __init__(self, settings: Settings, clients: dict[str, Client] | None = None) -> None:
        self._settings = settings
        self.statuses: StatusMap = status_map(settings.status_mapping)
        self.status_mapping = settings.status_mapping
        self.lease_seconds = settings.queue_lease_seconds
        # the raw clients stay in here: a call made outside would escape the retry policy
        self._clients = clients or {
            env.name: connect(env, settings.supabase_timeout_seconds)
            for env in settings.environments()
        }
        self.unavailable: dict[str, str] = {}  # environment -> why its last call failed

    @property
    def environments(self) -> list[str]:
        """The enabled environments, in polling order."""
        return list(self._clients)

    def only(self, env: str) -> Queue:
        """This queue in `env` alone, on the same client, with its own `unavailable`: a reader
        that wants each environment's answer, or failure, apart from the others'."""
        return Queue(self._settings, clients={env: self._client(env)})

    def storage(self, env: str) -> Storage:
        """The environment's Storage buckets."""
        return Storage(self._client(env))

    def _across(self, call: Callable[[str], T], skip: Collection[str] = ()) -> dict[str, T]:
        """`call` for every environment in polling order, but those in `skip`. One that fails (a
        wrong service key, its Supabase down) is left out and noted in `unavailable`, so the
        others go on."""
        results: dict[str, T] = {}
        for env in (e for e in self._clients if e not in skip):
            try:
                results[env] = call(env)
            except QueueError as exc:
                name = env.upper()
                why = f"{exc.reason}; check {name}_SUPABASE_URL and {name}_SUPABASE_SERVICE_KEY"
                if self.unavailable.get(env) != why:
                    logger.error("%s: its rows wait: %s", env, why)
                self.unavailable[env] = why
            else:
                if self.unavailable.pop(env, None):
                    logger.warning("%s: Supabase answers again", env)
        return results

    def _client(self, env: str) -> Client:
        try:
            return self._clients[env]
        except KeyError:
            raise QueueError(f"environment {env!r} is not enabled") from None

    def rpc(
        self, env: str, function: str, params: dict[str, Any], *, repeatable: bool = True
    ) -> Any:
        """Call a SQL function in `env`; what it returns (rows, or a value). `repeatable=False`
        for a function a repeat would apply twice: made once."""
        request = self._client(env).rpc(function, params)
        return with_network_retries(
            lambda: request.execute().data, f"{env}: {function}", repeatable=repeatable
        )

    def add(self, env: str, request: dict[str, Any]) -> str:
        """Put a request (its document columns) into `env`'s queue, waiting for the registre
        stage; returns the new row's id. Made once: a repeated insert would add a second row."""
        values = {**request, "status_id": self.statuses.waiting}
        insert = self._client(env).table("extraction_queue").insert(values)
        rows = with_network_retries(lambda: insert.execute().data, f"{env}: add", repeatable=False)
        return str(rows[0]["id"])

    def _statuses_for(self, stage: Stage) -> tuple[int, int, int]:
        """(claimed from, in progress, retry to) for a stage."""
        s = self.statuses
        if stage is Stage.REGISTRE:
            return s.waiting, s.processing, s.waiting
        return s.ready_for_ocr, s.ocr_processing, s.ready_for_ocr

    def claim(
        self,
        stage: Stage,
        limit: int,
        owner: str,
        sources: tuple[str, ...] | None = None,
        *,
        env: str | None = None,
        job_id: str | None = None,
    ) -> list[Job]:
        """Claim up to `limit` rows, FIFO within an environment, environments in polling order
        (or only `env`; or only the row `job_id`, when it is waiting).

        Rows that cannot be worked on are failed at once with their reason and not returned.
        """
        if sources is None and stage is Stage.OCR:
            sources = OCR_SOURCES
        from_status, to_status, _ = self._statuses_for(stage)
        jobs: list[Job] = []
        for name in [env] if env else self.environments:
            if len(jobs) >= limit:
                break
            rows = self.rpc(
                name,
                "registre_claim_v1",
                {
                    "p_stage": stage.value,
                    "p_owner": owner,
                    "p_limit": limit - len(jobs),
                    "p_lease_seconds": self.lease_seconds,
                    "p_from_status": from_status,
                    "p_to_status": to_status,
                    "p_sources": list(sources) if sources else None,
                    "p_id": job_id,
                },
            )
            for row in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
                try:
                    jobs.append(parse_job(name, row, stage, owner))
                except InvalidJob as exc:
                    logger.warning("%s: row %s is invalid: %s", name, row["id"], exc)
                    verdict = decide(exc, attempts=0, base_s=0)  # to error, with what to fix
                    permanent = verdict.fate is Fate.ERROR
                    self.fail_held(name, str(row["id"]), owner, stage, verdict.message,
                                   permanent=permanent)  # fmt: skip
        return jobs

    def why_not_claimable(self, env: str, job_id: str, stage: Stage) -> str:
        """Why a claim of `job_id` found nothing, in words for the run's end state."""
        request = (self._client(env).table("extraction_queue")
                   .select("status_id,lease_owner,retry_after").eq("id", job_id))  # fmt: skip
        rows = with_network_retries(lambda: request.execute().data, f"{env}: row {job_id}")
        if not rows:
            return f"{env}: there is no row {job_id} in extraction_queue"
        row = rows[0]
        from_status, _, _ = self._statuses_for(stage)
        # a finished row keeps its last owner: only a row in progress is held by it
        in_progress = (self.statuses.processing, self.statuses.ocr_processing)
        if row["lease_owner"] and row["status_id"] in in_progress:
            return f"{env}: row {job_id} is held by {row['lease_owner']}"
        if row["status_id"] == from_status:
            return f"{env}: row {job_id} is waiting but held back until {row['retry_after']}"
        return (f"{env}: row {job_id} is in status {row['status_id']}, not waiting for {stage}"
                f" (status {from_status})")  # fmt: skip

    def renew(self, job: Job) -> None:
        """Extend the job's lease; raise LeaseLost if it was taken back meanwhile."""
        renewed = self.rpc(
            job.env,
            "registre_renew_lease_v1",
            {"p_id": job.id, "p_owner": job.owner, "p_lease_seconds": self.lease_seconds},
        )
        if not renewed:
            raise LeaseLost(f"{job.label}: lease lost, another worker may hold the row now")

    def complete(self, job: Job, status: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Write the stage's result and move the row to `status`, if this owner still holds it."""
        _, processing, _ = self._statuses_for(job.stage)
        values = {**fields, "status_id": status, "lease_expires_at": None, "updated_at": _now()}
        request = (
            self._client(job.env)
            .table("extraction_queue")
            .update(values)
            .eq("id", job.id)
            .eq("lease_owner", job.owner)
            .eq("lease_stage", job.stage.value)
            # a repeated call finds the row already moved and writes the same values again
            .in_("status_id", sorted({processing, status}))
        )
        rows = with_network_retries(lambda: request.execute().data, f"{job.label}: complete")
        if not rows:
            raise LeaseLost(f"{job.label}: not completed, the lease was lost before the write")
        return rows[0]

    def mark_downloaded(self, job: Job, supabase_path: str) -> int:
        """The registre stage's result: the PDF is in Storage; a plan is then done, anything
        else ready for OCR. Returns the row's new status."""
        s = self.statuses
        status = s.done if job.document_source == "plan_cadastraux" else s.ready_for_ocr
        self.complete(job, status, {"supabase_path": supabase_path, "downloaded_at": _now(),
                                    "worker_id": None, "error_message": None})  # fmt: skip
        return status

    def mark_ocr_done(self, job: Job, texts: dict[str, Any]) -> int:
        """The OCR stage's result: the texts (and structured rows) written, the row done."""
        fields = {**texts, "ocr_completed_at": _now(), "ocr_error": None,
                  "ocr_attempts": job.attempts + 1}  # fmt: skip
        self.complete(job, self.statuses.done, fields)
        return self.statuses.done

    def fail(
        self, job: Job, message: str, *, permanent: bool, retry_delay_seconds: int = 0
    ) -> dict[str, Any] | None:
        """Record a failure: back to waiting with one more attempt, or to error when permanent or
        out of attempts. Returns the row, or None when the lease was already lost."""
        return self.fail_held(
            job.env, job.id, job.owner, job.stage, message,
            permanent=permanent, retry_delay_seconds=retry_delay_seconds,
        )  # fmt: skip

    def fail_held(
        self,
        env: str,
        job_id: str,
        owner: str,
        stage: Stage,
        message: str,
        *,
        permanent: bool,
        retry_delay_seconds: int = 0,
    ) -> dict[str, Any] | None:
        """`fail` for a row known by its id and owner only (a dead run's hooks, the reconciler)."""
        _, processing, retry_status = self._statuses_for(stage)
        rows = self.rpc(
            env,
            "registre_fail_v1",
            {
                "p_id": job_id,
                "p_owner": owner,
                "p_stage": stage.value,
                "p_message": message[:4000],
                "p_permanent": permanent,
                "p_processing": processing,
                "p_retry_status": retry_status,
                "p_error_status": self.statuses.error,
                "p_retry_delay_seconds": retry_delay_seconds,
            },
        )
        if not rows:
            logger.warning("%s: row %s: failure not recorded, lease already lost", env, job_id)
            return None
        return rows[0]

    def release(self, job: Job, message: str, *, retry_delay_seconds: int) -> dict[str, Any] | None:
        """Give the row back without counting an attempt, for failures that are not the
        document's (the registry or Gemini down, no free account, a configuration mistake)."""
        return self.release_held(job.env, job.id, job.owner, job.stage, message,
                                 retry_delay_seconds=retry_delay_seconds)  # fmt: skip

    def release_held(
        self, env: str, job_id: str, owner: str, stage: Stage, message: str,
        *, retry_delay_seconds: int = 0,
    ) -> dict[str, Any] | None:  # fmt: skip
        """`release` for a row known by its id and owner only (a host that stopped its runs)."""
        _, processing, retry_status = self._statuses_for(stage)
        rows = self.rpc(
            env,
            "registre_release_v1",
            {
                "p_id": job_id,
                "p_owner": owner,
                "p_stage": stage.value,
                "p_message": message[:4000],
                "p_processing": processing,
                "p_retry_status": retry_status,
                "p_retry_delay_seconds": retry_delay_seconds,
            },
        )
        return rows[0] if rows else None

    def cancel(self, env: str, job_id: str, owner: str, stage: Stage, message: str) -> bool:
        """The operator cancelled the row's run: the row goes to error and stays there (if that
        run holds it, or nobody does and it still waits for the stage). True if it changed."""
        from_status, processing, _ = self._statuses_for(stage)
        rows = self.rpc(env, "registre_cancel_v1", {
            "p_id": job_id, "p_owner": owner, "p_stage": stage.value, "p_message": message[:4000],
            "p_processing": processing, "p_waiting": from_status,
            "p_error_status": self.statuses.error,
        })  # fmt: skip
        return bool(rows)

    def requeue(self, env: str, job_id: str, stage: Stage) -> bool:
        """Put a row in error back to the stage's waiting status, its attempts reset (a retry
        asked for by an operator). True if it was in error."""
        from_status, _, _ = self._statuses_for(stage)
        params = {"p_id": job_id, "p_stage": stage.value, "p_error_status": self.statuses.error,
                  "p_waiting": from_status}  # fmt: skip
        return bool(self.rpc(env, "registre_requeue_v1", params))

    def retry(
        self,
        *,
        env: str | None = None,
        ids: list[str] | None = None,
        since: datetime | None = None,
        stage: Stage | None = None,
        message: str | None = None,
        exclude: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, list[Retried]]:
        """Put rows in error back into the queue, in `env` or every environment, attempts reset:
        an OCR failure whose PDF is stored to ready for OCR, any other to waiting. Only rows with
        one of `ids`, in error since `since`, failed in `stage`, whose error contains `message`
        and not `exclude` (case-insensitive); rows a run still holds are left alone. With
        `dry_run`, the rows that would be retried, nothing changed."""
        s = self.statuses
        params = {
            "p_error_status": s.error,
            "p_waiting": s.waiting,
            "p_ready_for_ocr": s.ready_for_ocr,
            "p_ids": ids or None,
            "p_since": since.isoformat() if since else None,
            "p_stage": stage.value if stage else None,
            "p_message": message or None,
            "p_exclude": exclude or None,
            "p_dry_run": dry_run,
        }

        def retry_in(name: str) -> list[dict[str, Any]]:
            return self.rpc(name, "registre_retry_v1", params)

        found = {env: retry_in(env)} if env else self._across(retry_in)
        return {
            name: [
                Retried(name, str(r["id"]), r["document_source"] or "", r["document_number"] or "",
                        Stage(r["stage"]), r["status_id"], r["message"] or "", r["failed_at"])
                for r in rows
            ]
            for name, rows in found.items()
        }  # fmt: skip

    def claimable(
        self,
        stage: Stage,
        sources: tuple[str, ...] | None,
        limit: int,
        skip: Collection[str] = (),
    ) -> list[Claimable]:
        """The next rows a claim would take, in claim order (environments in polling order, but
        those in `skip`), without taking them."""
        from_status, _, _ = self._statuses_for(stage)
        params = {"p_from_status": from_status, "p_sources": list(sources) if sources else None,
                  "p_limit": limit}  # fmt: skip
        rows = self._across(lambda env: self.rpc(env, "registre_claimable_v2", params), skip)
        found = [
            Claimable(
                env,
                str(r["id"]),
                r["document_source"] or "",
                r["document_number"] or "",
                r["version"],
            )
            for env, env_rows in rows.items()
            for r in env_rows
        ]
        return found[:limit]

    def held(self) -> list[Held]:
        """Every row held under a lease, in every environment."""
        rows = self._across(lambda env: self.rpc(env, "registre_held_v2", {}))
        return [
            Held(env, str(r["id"]), r["lease_owner"], Stage(r["lease_stage"]))
            for env, env_rows in rows.items()
            for r in env_rows
            if r["lease_stage"] in (Stage.REGISTRE.value, Stage.OCR.value)
        ]

    def held_rows(self, env: str, columns: str) -> list[dict[str, Any]]:
        """`columns` of the rows `registre_held_v2` reads in `env` (live and under a lease),
        whatever system's stage holds them."""
        request = (self._client(env).table("extraction_queue").select(columns)
                   .in_("status_id", list(LIVE)).not_.is_("lease_expires_at", "null"))  # fmt: skip
        return with_network_retries(lambda: request.execute().data, f"{env}: held rows")

    def last_errors(self, env: str, columns: str, limit: int) -> list[dict[str, Any]]:
        """`columns` of the last `limit` rows put in the error status in `env`, newest first."""
        request = (self._client(env).table("extraction_queue").select(columns)
                   .eq("status_id", self.statuses.error)
                   .order("updated_at", desc=True).limit(limit))  # fmt: skip
        return with_network_retries(lambda: request.execute().data, f"{env}: errors")

    def recover_expired(self) -> dict[str, list[dict[str, Any]]]:
        """Take back every row whose lease expired, in every environment."""
        s = self.statuses
        params = {
            "p_registre_processing": s.processing,
            "p_ocr_processing": s.ocr_processing,
            "p_waiting": s.waiting,
            "p_ready_for_ocr": s.ready_for_ocr,
            "p_error_status": s.error,
        }
        recovered = self._across(lambda env: self.rpc(env, "registre_recover_expired_v2", params))
        for env, rows in recovered.items():
            for row in rows:
                logger.warning("%s: row %s taken back after its lease expired", env, row["id"])
        return recovered

    def counts(self, claimable: bool = False) -> dict[str, dict[tuple[int, str | None], int]]:
        """Live rows (not done, not in error) per (status_id, document_source) in every
        environment; with `claimable`, only the rows a claim would take now (not held back by a
        retry delay). Reads the live rows only, whatever the table's history."""
        params = {"p_claimable": claimable}
        return self._counts("registre_queue_counts_v2", params)

    def finished_counts(self, since: datetime) -> dict[str, dict[tuple[int, str | None], int]]:
        """Finished rows (done or error) per (status_id, document_source) in every environment,
        of those that finished at or after `since`."""
        return self._counts("registre_finished_counts_v1", {"p_since": since.isoformat()})

    def _counts(
        self, function: str, params: dict[str, Any]
    ) -> dict[str, dict[tuple[int, str | None], int]]:
        rows = self._across(lambda env: self.rpc(env, function, params))
        return {
            env: {(r["status_id"], r["document_source"]): r["jobs"] for r in env_rows}
            for env, env_rows in rows.items()
        }

    def estimated_rows(self) -> dict[str, int | None]:
        """How many rows extraction_queue holds in every environment, as PostgreSQL's statistics
        last estimated it (None before its first ANALYZE): instant, and approximate."""
        return self._across(lambda env: self.rpc(env, "registre_queue_estimate_v1", {}))

    def check_status_names(self) -> None:
        """Refuse to start when `extraction_status` contradicts the configured mapping: finished
        documents would otherwise be labelled "Erreur" (DOMAIN.md §1.2)."""
        error_id = self.statuses.error

        def names_of(env: str) -> list[dict[str, Any]]:
            request = self._client(env).table("extraction_status").select("id,name")
            return with_network_retries(lambda: request.execute().data, f"{env}: statuses")

        for env, rows in self._across(names_of).items():
            names = {r["id"]: r["name"] for r in rows}
            if error_id in names and "rreur" not in names[error_id].lower():
                other = next(m for m in NAMES if m != self.status_mapping)
                raise QueueError(
                    f"{env}: extraction_status {error_id} is {names[error_id]!r}, not an error"
                    f" status: this database uses the {other!r} ids, set STATUS_MAPPING={other}"
                )

    def record(self, job: Job, fields: dict[str, Any]) -> None:
        """Write `fields` on a row this owner still holds in its stage, its status unchanged
        (what the run spent, the earlier download it reused); LeaseLost if it is held no more."""
        _, processing, _ = self._statuses_for(job.stage)
        request = (self._client(job.env).table("extraction_queue").update(fields)
                   .eq("id", job.id).eq("lease_owner", job.owner)
                   .eq("lease_stage", job.stage.value).eq("status_id", processing))  # fmt: skip
        rows = with_network_retries(lambda: request.execute().data, f"{job.label}: record")
        if not rows:
            raise LeaseLost(f"{job.label}: not recorded, the lease was lost before the write")


def _now() -> str:
    return datetime.now(UTC).isoformat()
