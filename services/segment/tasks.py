"""Celery tasks of the segment service, thin over services/segment/jobs.py.

``segment.video`` segments a video, then computes its raw result set; ``segment.stabilize``
computes one more result set. Start with
``celery -A services.segment.tasks worker -Q segment --pool prefork -c 1``: this module is
the worker's entrypoint, so it builds the one settings object, the Celery app and the
worker process hooks.
"""

from __future__ import annotations

import logging
from typing import Any

from services.contracts.tasks import SEGMENT_STABILIZE, SEGMENT_VIDEO, SegmentVideoTask, StabilizeTask, TaskPayload
from services.platform.celery_app import create_celery
from services.platform.logs import setup_logging
from services.runtime.execution import Work, run_job
from services.segment import jobs
from services.segment.settings import SegmentSettings
from services.segment.worker import create_worker
from services.store.jobs import ACTIVE

settings = SegmentSettings()
setup_logging(settings.log_level, service="segment")
app = create_celery(settings, name="kadr-segment")
log = logging.getLogger("kadr.segment")
worker = create_worker(settings)


def _run(task_name: str, payload: TaskPayload, work: Work) -> str:
    ctx = worker.context()
    return run_job(
        ctx.store,
        payload.job_id,
        service="segment",
        task=task_name,
        max_deliveries=settings.max_deliveries,
        request_id=payload.request_id,
        work=work,
        partial=lambda job: jobs.remove_partial(job, blobs=ctx.blobs),
    )


@app.task(name=SEGMENT_VIDEO)  # type: ignore[untyped-decorator]  # celery ships no type information
def segment_video(payload: dict[str, Any]) -> str:
    p = SegmentVideoTask.model_validate(payload)
    blobs = worker.context().blobs
    state = _run(SEGMENT_VIDEO, p, lambda job, progress: jobs.segment(job, progress, blobs=blobs, settings=settings))
    if state == "succeeded":
        _run(
            SEGMENT_STABILIZE,
            StabilizeTask(job_id=p.raw_result_id, request_id=p.request_id),
            lambda job, progress: jobs.stabilize(job, progress, blobs=blobs),
        )
    elif state == "failed":
        worker.context().store.transition(
            p.raw_result_id,
            "failed",
            allowed_from=ACTIVE,
            error={"code": "segmentation_failed", "message": "the video could not be segmented"},
        )
    return state


@app.task(name=SEGMENT_STABILIZE)  # type: ignore[untyped-decorator]  # celery ships no type information
def segment_stabilize(payload: dict[str, Any]) -> str:
    blobs = worker.context().blobs
    return _run(
        SEGMENT_STABILIZE,
        StabilizeTask.model_validate(payload),
        lambda job, progress: jobs.stabilize(job, progress, blobs=blobs),
    )
