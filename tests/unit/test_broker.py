"""The Celery broker transport (services/platform/broker.py) against a real redis-server:
messages go through and are acked as with kombu's own, with one client per channel."""

from __future__ import annotations

import base64
import json

from kombu import Connection

from services.contracts.settings import Settings
from services.platform.broker import Transport
from services.platform.celery_app import create_celery


def test_celery_sends_through_it_and_the_message_lands_on_the_queue(redis_server, redis_client):
    app = create_celery(Settings(redis_url=redis_server))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
    for i in range(3):
        app.send_task("kadr.test.echo", args=[{"i": i}], queue="broker-test")
    raw = redis_client.lrange("broker-test", 0, -1)
    assert len(raw) == 3
    # Celery's protocol 2 body: [args, kwargs, embed], base64 inside kombu's envelope.
    bodies = sorted(json.loads(base64.b64decode(json.loads(m)["body"]))[0][0]["i"] for m in raw)
    assert bodies == [0, 1, 2]


def test_one_client_per_channel_which_follows_a_new_pool(redis_server):
    with Connection(redis_server, transport="services.platform.broker:Transport") as conn:
        ch = conn.default_channel
        with ch.conn_or_acquire() as a, ch.conn_or_acquire() as b:
            assert a is b
        given = object()
        with ch.conn_or_acquire(given) as c:
            assert c is given
        ch._pool = None  # what a reconnect does: the next use builds a new pool
        with ch.conn_or_acquire() as d:
            assert d is not a and d.connection_pool is ch.pool


def test_consume_and_ack_leave_nothing_unacked(redis_server, redis_client):
    with Connection(redis_server, transport="services.platform.broker:Transport") as conn:
        q = conn.SimpleQueue("broker-ack-test")
        q.put({"n": 1})
        msg = q.get(timeout=5)
        assert msg.payload == {"n": 1}
        assert redis_client.hlen("unacked") == 1  # held by the consumer until acked
        msg.ack()
        q.close()
    assert redis_client.hlen("unacked") == 0 and redis_client.llen("broker-ack-test") == 0


def test_a_single_photo_is_taken_before_batch_items_sent_earlier(redis_server, redis_client):
    """Celery's priority on kombu's Redis transport, as the worker consumes (BRPOP over
    every step's list): what goes at the interactive step leaves first, each step FIFO."""
    from kombu import Consumer, Queue

    from services.contracts.tasks import BATCH, INTERACTIVE, queue_key, send_options

    app = create_celery(Settings(redis_url=redis_server))
    for i in range(3):
        payload = {"job_id": f"batch-{i}", "priority": BATCH}
        app.send_task(
            "enhance.photo", args=[payload], **{**send_options("enhance.photo", payload), "queue": "prio-test"}
        )
    payload = {"job_id": "single", "priority": INTERACTIVE}
    app.send_task("enhance.photo", args=[payload], **{**send_options("enhance.photo", payload), "queue": "prio-test"})
    assert redis_client.llen(queue_key("prio-test", BATCH)) == 3 and redis_client.llen("prio-test") == 1
    got = []

    def take(body, message):
        got.append(body[0][0]["job_id"])
        message.ack()

    with app.connection_for_read() as conn, Consumer(conn, [Queue("prio-test")], callbacks=[take], accept=["json"]):
        while len(got) < 4:
            conn.drain_events(timeout=5)
    assert got == ["single", "batch-0", "batch-1", "batch-2"]
