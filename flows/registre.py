"""The registre stage: one waiting request becomes a PDF in Supabase Storage.

python -m flows.registre --env dev --job-id UUID
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from flows.common import HOOKS, document_run, this_host_registered
from tasks.control.pools import REGISTRE
from tasks.download import download
from tasks.queue.costs import Reuse, fresh_download, reuse_hours
from tasks.queue.jobs import Job
from tasks.queue.table import Queue
from tasks.registry.errors import RegistryError
from tasks.registry.models import DownloadResult
from tasks.settings import Settings, load_settings
from tasks.storage import store_evidence, store_pdf


async def download_or_keep_evidence(
    job: Job, queue: Queue, settings: Settings, evidence_dir: Path
) -> DownloadResult:
    """`download`; a registry failure's screenshot and trace are stored first, so that the
    row's message links them."""
    try:
        return await download(job, queue, settings, evidence_dir)
    except RegistryError as exc:
        if exc.evidence:
            try:
                exc.stored_evidence = store_evidence(job, queue, exc.evidence)
            except Exception:  # evidence is best effort: the failure itself must be recorded
                get_run_logger().warning("%s: evidence not stored", job.label, exc_info=True)
        raise


@flow(name=REGISTRE.flow, **HOOKS)
async def registre(env: str, job_id: str) -> Any:
    """Download the request `job_id` of environment `env`, store it, mark it downloaded."""
    settings = load_settings()
    with (
        tempfile.TemporaryDirectory() as evidence_dir,
        document_run(REGISTRE, env, job_id) as run,
    ):
        if run.job is None or run.lease is None:
            return run.skipped
        job = run.job
        # before any browser: a recent download of the same document is already paid for
        reuse = fresh_download(run.queue, job, reuse_hours(settings, job.document_source))
        if reuse is None:
            result = await download_or_keep_evidence(job, run.queue, settings, Path(evidence_dir))
            run.lease.check()
            path = store_pdf(job, run.queue, result.pdf)
            get_run_logger().info("%s stored at %s (%d bytes)", job.label, path,
                                  result.size_bytes)  # fmt: skip
        else:
            path = reuse.supabase_path
        fee = 0.0 if reuse else settings.registry_fee_usd
        run.queue.record(job, registry_columns(job, fee, reuse))
        status = run.queue.mark_downloaded(job, path)
    await show_registry_cost(job, path, fee, reuse)
    return {"env": job.env, "id": job.id, "supabase_path": path, "status_id": status,
            "reused_from": reuse and reuse.row_id}  # fmt: skip


def registry_columns(job: Job, fee_usd: float, reuse: Reuse | None) -> dict[str, Any]:
    """The row's registry fees (earlier downloads' plus this one's) and the reused row."""
    return {"registry_cost_usd": round(job.registry_cost_usd + fee_usd, 6),
            "reused_from": reuse and reuse.row_id}  # fmt: skip


async def show_registry_cost(job: Job, path: str, fee_usd: float, reuse: Reuse | None) -> None:
    """What the download cost, or which earlier download it reused, in the run's artifacts
    and log."""
    if reuse is None:
        how = "downloaded from the registry"
        if fee_usd == 0:
            how += " (REGISTRY_FEE_USD is not set: the fee counts as 0)"
    else:
        how = (f"reused the PDF of row {reuse.row_id}, downloaded {reuse.downloaded_at}:"
               " nothing paid")  # fmt: skip
    await acreate_table_artifact(
        key=f"registry-cost-{job.id}",
        table=[{"document": job.label, "PDF": path, "how": how, "USD": fee_usd}],
        description=f"{job.label}: the registry's fee",
    )
    get_run_logger().info("%s: %s, registry fee $%.2f", job.label, how, fee_usd)


def main() -> None:
    parser = argparse.ArgumentParser(description="Download one waiting document now.")
    parser.add_argument("--env", choices=["prod", "staging", "dev"], required=True)
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args()
    with this_host_registered(load_settings()):
        print(asyncio.run(registre(env=args.env, job_id=args.job_id)))


if __name__ == "__main__":
    main()
