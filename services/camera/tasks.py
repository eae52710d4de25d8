"""Celery tasks of the camera service, thin over services/camera/jobs.py: ``camera.event``.

Start with ``celery -A services.camera.tasks worker -Q camera --pool threads -c 4`` (as compose
and the Procfile do: events wait on their clip's after-part, so a few run at once).

The worker process *is* the frame buffer: at start it opens one reader thread per
configured camera and a thread that publishes each ring's health to Redis for
``GET /api/v1/cameras`` (services/camera/worker.py). Run exactly
one camera worker per set of cameras: a second one would buffer the cameras again and
take half the events, which it could still serve, at twice the reading cost.

``camera.event``: frames nearest each offset before the event time → sharpest (the
snow photo) → plate crops → blobs under ``camera/<event id>/`` → the event record's
result; then the event clip (services/camera/clips.py): the task waits for the
camera's ``clip_after_seconds`` past the event to arrive (the threads pool makes that
wait a sleeping thread, not a process) and cuts ``clip.mp4`` from the ring. A clip
that cannot be made is reported on the event, never fails it. Process RSS is logged
at the start and end of every event. When the camera has
a ``webhook_url`` the finished event is POSTed there (HMAC-signed with the camera's
secret, same scheme as inbound) by the janitor from the outbox, with retries and
exponential backoff; it is queued in the same Redis script that records the end, so no
restart of any process loses it (services/store/outbox.py, delivery.py).
"""

from __future__ import annotations

import logging
from typing import Any

from services.camera import jobs
from services.camera.settings import CameraSettings
from services.camera.worker import CameraWorker
from services.contracts.tasks import CAMERA_EVENT, CameraEventTask
from services.platform.celery_app import create_celery
from services.platform.logs import setup_logging
from services.runtime.execution import run_job

settings = CameraSettings()
setup_logging(settings.log_level, service="camera")
app = create_celery(settings, name="kadr-camera")
log = logging.getLogger("kadr.camera")
worker = CameraWorker(settings)


@app.task(name=CAMERA_EVENT)  # type: ignore[untyped-decorator]  # celery ships no type information
def camera_event(payload: dict[str, Any]) -> str:
    p = CameraEventTask.model_validate(payload)
    rt = worker.runtime()
    # Its end reaches the camera's webhook_url through the outbox, queued with the state
    # change itself: a worker restart cannot lose it (services/upkeep/delivery.py).
    return run_job(
        rt.store,
        p.job_id,
        service="camera",
        task=CAMERA_EVENT,
        max_deliveries=settings.max_deliveries,
        request_id=p.request_id,
        work=lambda job, prog: jobs.process_event(rt, job, prog, settings=settings),
    )
