"""Celery app factory with kadr's defaults for every queue.

Reliability choices, all deliberate:
- JSON only: payloads are ids and small option objects (pydantic models in tasks.py).
- ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies goes back to the
  queue. The redelivery cap lives in the job store (``JobStore.begin``), because Celery
  has none for worker deaths: a task that kills its worker every time would loop forever.
- prefetch 1: a long GFPGAN task does not hold other messages hostage in a busy worker,
  and a single photo (priority step 0) is the next message a freed pool process takes.
- soft/hard limits below the Redis ``visibility_timeout`` (enforced by Settings), or
  Redis would hand a still-running task to a second worker.
- results are kept in the job store, so the Celery result backend is off.
- kombu's Redis transport with a client reused per channel (broker.py): the stock one
  builds a client object per publish and per ack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import setup_logging as _celery_setup_logging

from services.contracts.settings import Settings
from services.contracts.tasks import PRIORITY_SEP, PRIORITY_STEPS, QUEUES, TASK_ROUTES, queue_key, queue_keys

if TYPE_CHECKING:
    import redis


def create_celery(settings: Settings, name: str = "kadr") -> Celery:
    app = Celery(name, broker=settings.redis_url)
    app.conf.update(
        broker_transport="services.platform.broker:Transport",
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Survive a Redis restart without the producer hanging.
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
            # Two steps (tasks.py): interactive work, then batch items. Fewer steps than
            # kombu's four: every step is one more list each BRPOP names.
            "priority_steps": list(PRIORITY_STEPS),
            "sep": PRIORITY_SEP,
        },
        broker_connection_retry_on_startup=True,
        task_routes=TASK_ROUTES,
        task_queues=None,
        task_default_queue=QUEUES[0],
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # Models load in a background thread after fork; nothing slow runs in the
        # process-init hook, but leave room for a busy machine.
        worker_proc_alive_timeout=60,
        broker_heartbeat=0,
    )
    return app


@_celery_setup_logging.connect  # type: ignore[untyped-decorator]  # celery ships no type information
def _keep_kadr_logging(**_: Any) -> None:
    """Connected, this stops Celery from installing its own plain-text handlers: every
    line a worker writes stays one JSON object (logs.setup_logging configured the root)."""


def queue_length(r: redis.Redis, queue: str, priority: int | None = None) -> int:
    """Messages waiting in a Redis-backed Celery queue (not counting reserved ones): at
    one priority step, or (None) at all of them."""
    if priority is not None:
        return int(r.llen(queue_key(queue, priority)))
    p = r.pipeline(transaction=False)
    for key in queue_keys(queue):
        p.llen(key)
    return sum(int(n) for n in p.execute())
