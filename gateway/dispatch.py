"""Sending work to a queue: backlog admission and the task message itself."""
from __future__ import annotations

import logging

from gateway.context import Kadr
from gateway.errors import ApiError
from services.contracts.tasks import INTERACTIVE, TaskPayload, queue_for
from services.platform.celery_app import queue_length
from services.platform.dispatch import DispatchError
from services.store.jobs import ACTIVE

log = logging.getLogger("kadr.gateway")


def admit(k: Kadr, task_name: str, n: int = 1) -> None:
    """Refuse new work while a queue's backlog is over its limit: a 503 the client can
    retry beats an unbounded queue that eats Redis memory (which runs ``noeviction``).
    Counted at the interactive step only: batch items wait at their own step, which the
    batch feeder keeps under the same limit, so a big batch never refuses a single photo."""
    queue = queue_for(task_name)
    backlog = queue_length(k.redis, queue, INTERACTIVE)
    if backlog + n > k.settings.max_queue_backlog:
        raise ApiError(503, "queue_full",
                       f"queue {queue} holds {backlog} waiting tasks (limit "
                       f"{k.settings.max_queue_backlog}); retry later",
                       headers={"Retry-After": str(k.settings.backlog_retry_after_seconds)})


def send(k: Kadr, task_name: str, payload: TaskPayload) -> None:
    k.jobs.set_task(payload.job_id, task_name, payload.model_dump())
    try:
        k.send(task_name, payload.model_dump())
    except DispatchError as e:
        log.error("could not queue task", extra={"task": task_name, "error": str(e)})
        k.jobs.transition(payload.job_id, "failed", allowed_from=ACTIVE,
                          error={"code": "dispatch_failed", "message": "the broker is unreachable"})
        raise ApiError(503, "broker_unavailable", "the task queue is unreachable; retry later",
                       headers={"Retry-After": "5"})
