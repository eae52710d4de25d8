"""The one way a job's task goes on a queue, for every producer: the gateway (uploads),
the batch feeder (batch items, in any process that feeds) and the reaper (orphans sent
again). Each sends by name with the same message options (:func:`send_options`: queue,
priority step, time limits, request id), and a broker that does not take the message is
one exception, :class:`DispatchError`, whoever sent: the gateway answers 503 and fails the
job, the feeder puts the items back to wait, the reaper tries again on its next round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from services.contracts.tasks import send_options

Send = Callable[[str, dict[str, Any]], None]


class DispatchError(RuntimeError):
    """The broker did not take the task message (unreachable, or refused the write)."""


class Dispatcher:
    def __init__(self, celery: Celery):
        self.celery = celery

    def __call__(self, task: str, payload: dict[str, Any]) -> None:
        try:
            self.celery.send_task(task, args=[payload], **send_options(task, payload))
        except OperationalError as e:
            raise DispatchError(f"the broker did not take {task}: {e}") from e
