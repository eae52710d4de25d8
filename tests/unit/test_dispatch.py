"""The one task sender every producer uses (gateway, batch feeder, reaper), against a real
Redis broker and a port where none listens."""

from __future__ import annotations

import socket

import pytest

from services.contracts.settings import Settings
from services.contracts.tasks import BATCH, INTERACTIVE, queue_for
from services.platform.celery_app import create_celery, queue_length
from services.platform.dispatch import Dispatcher, DispatchError


def test_a_task_lands_on_its_queue_at_its_priority_step(redis_server, redis_client):
    send = Dispatcher(create_celery(Settings(redis_url=redis_server)))
    queue = queue_for("enhance.photo")
    send("enhance.photo", {"job_id": "a", "request_id": "r"})
    send("enhance.photo", {"job_id": "b", "request_id": "r", "priority": BATCH})
    assert queue_length(redis_client, queue, INTERACTIVE) == 1
    assert queue_length(redis_client, queue, BATCH) == 1


def test_a_broker_that_is_not_there_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    send = Dispatcher(create_celery(Settings(redis_url=f"redis://127.0.0.1:{port}/0")))
    with pytest.raises(DispatchError, match="the broker did not take enhance.photo"):
        send("enhance.photo", {"job_id": "a", "request_id": "r"})
