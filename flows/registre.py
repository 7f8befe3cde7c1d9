"""The registre stage: one waiting request becomes a PDF in Supabase Storage.

python -m flows.registre [--env dev] [--job-id UUID]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from redis import RedisError
from redis.asyncio import Redis

from flows.common import (
    Failure,
    capacity_reserved,
    name_run_after,
    run_owner,
    settle_failure,
    this_host_registered,
)
from tasks.capacity import CapacityExceeded, WorkerKind
from tasks.lease import LeaseKeeper
from tasks.queue import Job, LeaseLost, Queue, QueueError, Stage
from tasks.registry.accounts import AccountPool
from tasks.registry.browser import BrowserHost
from tasks.registry.driver import download_document
from tasks.registry.errors import (
    AccountStoreError,
    NoAccountAvailable,
    PermanentRegistryError,
    RegistryError,
)
from tasks.registry.models import DownloadResult, RegistryRequest
from tasks.registry.session import SessionStore
from tasks.settings import Settings, get_settings
from tasks.storage import EVIDENCE_BUCKET, Storage

EVIDENCE_LINK_SECONDS = 7 * 24 * 3600


@task(cache_policy=NO_CACHE)
def claim(queue: Queue, owner: str, env: str | None, job_id: str | None) -> Job | None:
    jobs = queue.claim(Stage.REGISTRE, 1, owner, env=env, job_id=job_id)
    return jobs[0] if jobs else None


@task(cache_policy=NO_CACHE, task_run_name="download-{job.label}")
async def download(
    job: Job, queue: Queue, settings: Settings, evidence_dir: Path
) -> DownloadResult:
    # one set of accounts for every environment, so that two runs never share a login
    accounts_env = settings.registry_accounts_environment or settings.environments()[0].name
    accounts = AccountPool(queue.client(accounts_env), owner=job.owner)
    redis = Redis.from_url(settings.redis_url)
    # the run's own browser, closed with the run (a flow run is one document)
    try:
        async with BrowserHost(headless=settings.browser_headless) as browser:
            sessions = SessionStore(redis, prefix=settings.redis_key_prefix)
            request = RegistryRequest(
                document_source=job.document_source,
                document_number=job.document_number,
                circonscription_fonciere=job.circonscription,
                cadastre=job.cadastre,
                designation_secondaire=job.designation_secondaire,
                acte_type=job.acte_type,
            )
            return await download_document(
                request,
                accounts=accounts,
                sessions=sessions,
                settings=settings,
                evidence_dir=evidence_dir,
                browser=browser,
            )
    finally:
        await redis.aclose()


@task(cache_policy=NO_CACHE)
def store_pdf(job: Job, queue: Queue, pdf: bytes) -> str:
    storage = Storage(queue.client(job.env))
    storage.ensure_buckets()
    return storage.upload_pdf(job, pdf)


@task(cache_policy=NO_CACHE)
def store_evidence(job: Job, queue: Queue, files: list[Path]) -> list[str]:
    """Upload the failure's screenshot and trace beside the job and link them in the UI."""
    storage = Storage(queue.client(job.env))
    storage.ensure_buckets()
    stored = []
    for path in files:
        content_type = "image/png" if path.suffix == ".png" else "application/zip"
        stored_path = storage.upload(
            EVIDENCE_BUCKET, f"{job.id}/{path.name}", path.read_bytes(), content_type
        )
        stored.append(stored_path)
        link = storage.signed_url(stored_path, EVIDENCE_LINK_SECONDS)
        create_link_artifact(
            link=link, link_text=path.name, description=f"{job.label}: {path.name}"
        )
    return stored


def classify(exc: Exception) -> Failure:
    if isinstance(exc, PermanentRegistryError):
        return Failure.PERMANENT
    if isinstance(exc, NoAccountAvailable | AccountStoreError | QueueError | RedisError):
        return Failure.SERVICE
    return Failure.DOCUMENT


def record_failure(job: Job, queue: Queue, exc: Exception) -> dict[str, Any] | None:
    """Settle the row after a failed download, with the registry's words and the evidence."""
    if isinstance(exc, RegistryError):
        evidence: list[str] = []
        try:
            evidence = store_evidence(job, queue, exc.evidence) if exc.evidence else []
        except Exception:  # evidence is best effort: the failure itself must be recorded
            get_run_logger().warning("%s: evidence not stored", job.label, exc_info=True)
        message = exc.message + (f" (evidence: {', '.join(evidence)})" if evidence else "")
    else:
        message = f"unexpected error: {type(exc).__name__}: {exc}"
    return settle_failure(queue, job, message, classify(exc))


@flow(name="registre")
async def registre(env: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Claim one waiting request (or the given one), download it, store it, mark it downloaded."""
    logger = get_run_logger()
    settings = get_settings()
    owner = run_owner("registre")
    try:
        with capacity_reserved(settings, WorkerKind.REGISTRE, owner):
            return await download_one(settings, owner, env, job_id)
    except CapacityExceeded as exc:
        logger.warning("not started: %s", exc)
        return {"claimed": False, "capacity": str(exc)}


async def download_one(
    settings: Settings, owner: str, env: str | None, job_id: str | None
) -> dict[str, Any]:
    logger = get_run_logger()
    queue = Queue(settings)
    job = claim(queue, owner, env, job_id)
    if job is None:
        logger.info("nothing to download")
        return {"claimed": False}
    name_run_after(job)
    with LeaseKeeper(queue, job) as lease, tempfile.TemporaryDirectory() as evidence_dir:
        try:
            result = await download(job, queue, settings, Path(evidence_dir))
            lease.check()
            path = store_pdf(job, queue, result.pdf)
        except LeaseLost:
            raise  # the row is another run's now: nothing of ours to write
        except Exception as exc:
            row = record_failure(job, queue, exc)
            logger.error("%s failed; row now in status %s", job.label, row and row["status_id"])
            raise
    statuses = queue.statuses
    final = statuses.done if job.document_source == "plan_cadastraux" else statuses.ready_for_ocr
    try:
        queue.complete(
            job,
            final,
            {
                "supabase_path": path,
                "downloaded_at": datetime.now(UTC).isoformat(),
                "worker_id": None,
                "error_message": None,
            },
        )
    except LeaseLost:
        logger.error("%s: lease lost before the write; the row's new owner will redo it", job.label)
        raise
    logger.info("%s stored at %s (%d bytes)", job.label, path, result.size_bytes)
    return {
        "claimed": True,
        "env": job.env,
        "id": job.id,
        "supabase_path": path,
        "status_id": final,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Download one waiting document.")
    parser.add_argument("--env", choices=["prod", "staging", "dev"])
    parser.add_argument("--job-id")
    args = parser.parse_args()
    with this_host_registered(get_settings()):
        print(asyncio.run(registre(env=args.env, job_id=args.job_id)))


if __name__ == "__main__":
    main()
