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
    """``progress`` (throttled; item ends and running items' progress both move it),
    ``item`` for each item that ends, ``end``."""
    def on_message(data: str) -> Iterator[str]:
        state, _, job_id = data.partition(" ")
        if state in TERMINAL:
            job = batches.jobs.get(job_id)
            if job is not None:
                yield _event("item", item_view(job))

    return _follow(batches.r, batches.key(batch_id) + ":events", read=lambda: batches.get(batch_id),
                   ended=lambda b: batches.finished(b) or b["state"] == "canceled", view=view,
                   on_message=on_message, max_seconds=max_seconds, min_interval=min_interval,
                   keepalive=keepalive)


def job_events(jobs, job_id: str, *, view: Callable[[dict], dict], max_seconds: float,
               min_interval: float = 0.5, keepalive: float = 15.0) -> Iterator[str]:
    """``progress`` (the job view, at most every ``min_interval``; the worker announces
    every tile and face) until it ends, then ``end`` with the final view."""
    return _follow(jobs.r, jobs.job_key(job_id) + ":events", read=lambda: jobs.get(job_id),
                   ended=lambda j: j["state"] in TERMINAL, view=view, max_seconds=max_seconds,
                   min_interval=min_interval, keepalive=keepalive, urgent=lambda data: data in TERMINAL)


def _follow(r, channel: str, *, read: Callable[[], dict | None], ended: Callable[[dict], bool],
            view: Callable[[dict], dict], max_seconds: float, min_interval: float, keepalive: float,
            on_message: Callable[[str], Iterator[str]] = lambda data: iter(()),
            urgent: Callable[[str], bool] = lambda data: False) -> Iterator[str]:
    """The stream both follow: subscribe first, then a snapshot (``progress``, and ``end``
    at once if it is over), then a fresh view at most every ``min_interval`` while
    messages arrive (at once for an ``urgent`` one), ``end`` when it is over; a comment
    line every ``keepalive`` seconds of silence; closed after ``max_seconds``."""
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    try:
        yield "retry: 2000\n\n"
        obj = read()
        if obj is None:
            return
        yield _event("progress", view(obj))
        if ended(obj):
            yield _event("end", view(obj))
            return
        deadline = time.monotonic() + max_seconds
        last_progress = last_sent = time.monotonic()
        dirty = now_please = False
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=min(1.0, min_interval))
            now = time.monotonic()
            if msg is not None:
                dirty = True
                now_please = now_please or urgent(msg["data"])
                for event in on_message(msg["data"]):
                    yield event
                    last_sent = now
            if dirty and (now_please or now - last_progress >= min_interval):
                obj = read()
                if obj is None:
                    return
                yield _event("progress", view(obj))
                last_progress = last_sent = now
                dirty = now_please = False
                if ended(obj):
                    yield _event("end", view(obj))
                    return
            if now - last_sent >= keepalive:
                yield ": keep-alive\n\n"  # proxies drop silent connections
                last_sent = now
    finally:
        pubsub.close()
