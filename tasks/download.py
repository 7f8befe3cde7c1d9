"""The registre stage's Prefect task: one document from the registry, with this run's own
browser and the shared accounts and sessions."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.queue.jobs import Job
from tasks.queue.table import Queue
from tasks.registry.browser import BrowserHost
from tasks.registry.driver import download_document
from tasks.registry.models import DownloadResult
from tasks.registry.session import SessionStore
from tasks.services import account_pool, async_redis_client, registry_config
from tasks.settings import Settings

__all__ = ["download"]


@task(cache_policy=NO_CACHE, task_run_name="download-{job.label}")
async def download(
    job: Job, queue: Queue, settings: Settings, evidence_dir: Path
) -> DownloadResult:
    accounts = account_pool(settings, queue, owner=job.owner)
    redis = async_redis_client(settings)
    cfg = registry_config(settings)
    # the run's own browser, closed with the run (a flow run is one document)
    try:
        async with BrowserHost(headless=cfg.headless) as browser:
            sessions = SessionStore(redis, prefix=settings.redis_key_prefix)
            return await download_document(
                job.request,
                accounts=accounts,
                sessions=sessions,
                cfg=cfg,
                evidence_dir=evidence_dir,
                browser=browser,
            )
    finally:
        await redis.aclose()
