"""Celery tasks of the enhance service, thin over services/enhance/jobs.py.

Start with ``celery -A services.enhance.tasks worker -Q enhance --pool prefork -c 1``.
This module is the worker's entrypoint, so it builds the one settings object, the Celery
app and the worker process hooks.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from services.contracts.records import AnyJob, EnhanceResult
from services.contracts.tasks import ENHANCE_PHOTO, EnhancePhotoTask
from services.enhance import jobs
from services.enhance.settings import EnhanceSettings
from services.enhance.worker import create_worker
from services.platform.celery_app import create_celery
from services.platform.logs import setup_logging
from services.runtime.execution import JobProgress, run_job

settings = EnhanceSettings()
setup_logging(settings.log_level, service="enhance")
app = create_celery(settings, name="kadr-enhance")
log = logging.getLogger("kadr.enhance")
worker = create_worker(settings)


@app.task(name=ENHANCE_PHOTO, bind=True)  # type: ignore[untyped-decorator]  # celery ships no type information
def enhance_photo(self: Task, payload: dict[str, Any]) -> str:
    p = EnhancePhotoTask.model_validate(payload)
    request_id = p.request_id or (self.request.get("kadr_request_id") or "")
    ctx = worker.context()

    def work(job: AnyJob, progress: JobProgress) -> EnhanceResult:
        return jobs.enhance(job, progress, ctx=ctx, settings=settings)

    return run_job(
        ctx.store,
        p.job_id,
        service="enhance",
        task=ENHANCE_PHOTO,
        max_deliveries=settings.max_deliveries,
        request_id=request_id,
        work=work,
        feed=ctx.feeder.feed,
        discard=lambda result: jobs.discard(result, blobs=ctx.blobs),
    )
