"""Sending work to a queue: backlog admission and the task message itself."""

from __future__ import annotations

import logging

from gateway.context import Kadr
from gateway.errors import ApiError
from services.contracts.tasks import CAMERA_QUEUE, INTERACTIVE, TaskPayload, queue_for
from services.platform.celery_app import queue_length
from services.platform.dispatch import DispatchError
from services.store.jobs import ACTIVE

log = logging.getLogger("kadr.gateway")


def admit(k: Kadr, task_name: str, n: int = 1) -> None:
    """The one admission check for new work: refuse it while its queue's backlog is over
    the queue's limit. A 503 the client can retry beats an unbounded queue that eats Redis
    memory (which runs ``noeviction``). Counted at the interactive step only: batch items
    wait at their own step, which the batch feeder keeps under the same limit, so a big
    batch never refuses a single photo. Camera events have their own, smaller limit and
    code: a camera retries within seconds and its pre-event frames age meanwhile."""
    queue = queue_for(task_name)
    limit, code, retry_after = _backlog_limit(k, queue)
    backlog = queue_length(k.redis, queue, INTERACTIVE)
    if backlog + n > limit:
        raise ApiError(
            503,
            code,
            f"queue {queue} holds {backlog} waiting tasks (limit {limit}); retry later",
            headers={"Retry-After": str(retry_after)},
        )


def _backlog_limit(k: Kadr, queue: str) -> tuple[int, str, int]:
    s = k.settings
    if queue == CAMERA_QUEUE:
        return s.camera_max_backlog, "camera_backlog_full", s.camera_retry_after_seconds
    return s.max_queue_backlog, "queue_full", s.backlog_retry_after_seconds


def send(k: Kadr, task_name: str, payload: TaskPayload) -> None:
    k.jobs.set_task(payload.job_id, task_name, payload.model_dump())
    try:
        k.send(task_name, payload.model_dump())
    except DispatchError as e:
        log.error("could not queue task", extra={"task": task_name, "error": str(e)})
        k.jobs.transition(
            payload.job_id,
            "failed",
            allowed_from=ACTIVE,
            error={"code": "dispatch_failed", "message": "the broker is unreachable"},
        )
        raise ApiError(
            503, "broker_unavailable", "the task queue is unreachable; retry later", headers={"Retry-After": "5"}
        )
