"""Server-Sent Events for a batch: ``progress`` (throttled), ``item`` (each item that
ends) and ``end``; and for one job: ``progress`` and ``end``. Fed by the job store's
pub/sub channels, so nothing polls.

A stream holds one gunicorn thread, so it is bounded (``sse_max_seconds``, then the
browser's EventSource reconnects on its own, ``retry`` tells it how soon) and every
stream starts with a full snapshot: a client that reconnects, or that missed events
while away, is never left with stale numbers.
"""
from __future__ import annotations

import json
import time
from typing import Callable, Iterator

from services.common.batches import BatchStore
from services.common.jobs import TERMINAL


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def batch_events(batches: BatchStore, batch_id: str, *, view: Callable[[dict], dict],
                 item_view: Callable[[dict], dict], max_seconds: float, min_interval: float = 0.5,
                 keepalive: float = 15.0) -> Iterator[str]:
    pubsub = batches.r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(batches.key(batch_id) + ":events")
    try:
        yield "retry: 2000\n\n"
        b = batches.get(batch_id)
        if b is None:
            return
        yield _event("progress", view(b))
        if batches.finished(b) or b["state"] == "canceled":
            yield _event("end", view(b))
            return
        deadline = time.monotonic() + max_seconds
        last_progress = last_sent = time.monotonic()
        dirty = False
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=min(1.0, min_interval))
            now = time.monotonic()
            if msg is not None:
                state, _, job_id = msg["data"].partition(" ")
                dirty = True
                if state in TERMINAL:
                    job = batches.jobs.get(job_id)
                    if job is not None:
                        yield _event("item", item_view(job))
                        last_sent = now
            if dirty and now - last_progress >= min_interval:
                b = batches.get(batch_id)
                if b is None:
                    return
                yield _event("progress", view(b))
                last_progress = last_sent = now
                dirty = False
                if batches.finished(b) or b["state"] == "canceled":
                    yield _event("end", view(b))
                    return
            if now - last_sent >= keepalive:
                yield ": keep-alive\n\n"  # proxies drop silent connections
                last_sent = now
    finally:
        pubsub.close()


def job_events(jobs, job_id: str, *, view: Callable[[dict], dict], max_seconds: float,
               min_interval: float = 0.5, keepalive: float = 15.0) -> Iterator[str]:
    """``progress`` (the job view, at most every ``min_interval``; the worker announces
    every tile and face) until it ends, then ``end`` with the final view."""
    pubsub = jobs.r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(jobs.job_key(job_id) + ":events")
    try:
        yield "retry: 2000\n\n"
        job = jobs.get(job_id)
        if job is None:
            return
        if job["state"] in TERMINAL:
            yield _event("end", view(job))
            return
        yield _event("progress", view(job))
        deadline = time.monotonic() + max_seconds
        last_progress = last_sent = time.monotonic()
        dirty = False
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=min(1.0, min_interval))
            now = time.monotonic()
            ended = False
            if msg is not None:
                dirty = True
                ended = msg["data"] in TERMINAL
            if ended or (dirty and now - last_progress >= min_interval):
                job = jobs.get(job_id)
                if job is None:
                    return
                if job["state"] in TERMINAL:
                    yield _event("end", view(job))
                    return
                yield _event("progress", view(job))
                last_progress = last_sent = now
                dirty = False
            if now - last_sent >= keepalive:
                yield ": keep-alive\n\n"
                last_sent = now
    finally:
        pubsub.close()
