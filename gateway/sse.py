"""Server-Sent Events for a batch: ``progress`` (throttled), ``item`` (each item that
ends) and ``end``; and for one job: ``progress`` and ``end``. Fed by the job store's
pub/sub channels, so nothing polls.

Messages come through the process's one subscription (:mod:`gateway.fanout`). A stream
is bounded (``sse_max_seconds``, then the browser's EventSource reconnects on its own,
``retry`` tells it how soon) and every stream starts with a full snapshot: a client that
reconnects, or that missed events while away, is never left with stale numbers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Response, g

from gateway.context import Kadr
from gateway.draining import draining
from gateway.fanout import RESYNC, Subscription
from gateway.holds import Held
from services.contracts import redis_keys
from services.contracts.records import AnyJob, Batch
from services.store.apikeys import lookup_key
from services.store.batches import BatchStore
from services.store.jobs import TERMINAL, JobStore

Subscribe = Callable[[str], Subscription]
View = Callable[[AnyJob], dict[str, Any]]
T = TypeVar("T")  # what a stream follows: a batch or a job
KEY_RECHECK_SECONDS = 3.0  # how soon a stream of a revoked key ends
WAIT_SPREAD = 0.25  # a ?wait= that times out answers within the last quarter of its seconds


def _always() -> bool:
    return True


def event_response(k: Kadr, stream_of: Callable[[Subscribe, Callable[[], bool]], Iterator[str]]) -> Response:
    """A held ``text/event-stream`` response for the caller's key: its hold (429/503 past
    the caps) is given back when the server closes the body, however that happens. The
    stream is given ``alive``: whether the key that opened it is still valid (a revoked
    key's streams end within ``KEY_RECHECK_SECONDS``)."""
    release = k.holds.acquire(g.owner)
    key = g.get("api_key", "")

    def alive() -> bool:
        return k.settings.auth_disabled or lookup_key(k.redis, key) is not None

    try:
        body = Held(stream_of(k.fanout.subscribe, alive), release)
    except BaseException:
        release()
        raise
    # X-Accel-Buffering: nginx passes each event on as it comes instead of buffering.
    return Response(
        body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def batch_events(
    batches: BatchStore,
    batch_id: str,
    *,
    subscribe: Subscribe,
    view: Callable[[Batch], dict[str, Any]],
    item_view: View,
    max_seconds: float,
    min_interval: float = 0.5,
    keepalive: float = 15.0,
    alive: Callable[[], bool] = _always,
) -> Iterator[str]:
    """``progress`` (throttled; item ends and running items' progress both move it),
    ``item`` for each item that ends, ``end``."""

    def on_message(data: str) -> Iterator[str]:
        state, _, job_id = data.partition(" ")
        if state in TERMINAL:
            job = batches.jobs.get(job_id)
            if job is not None:
                yield _event("item", item_view(job))

    return _follow(
        subscribe,
        redis_keys.batch_events(batch_id),
        read=lambda: batches.get(batch_id),
        ended=lambda b: batches.finished(b) or b["state"] == "canceled",
        view=view,
        on_message=on_message,
        max_seconds=max_seconds,
        min_interval=min_interval,
        keepalive=keepalive,
        alive=alive,
    )


def job_events(
    jobs: JobStore,
    job_id: str,
    *,
    subscribe: Subscribe,
    view: View,
    max_seconds: float,
    min_interval: float = 0.5,
    keepalive: float = 15.0,
    alive: Callable[[], bool] = _always,
) -> Iterator[str]:
    """``progress`` (the job view, at most every ``min_interval``; the worker announces
    every tile and face) until it ends, then ``end`` with the final view."""
    return _follow(
        subscribe,
        redis_keys.job_events(job_id),
        read=lambda: jobs.get(job_id),
        ended=lambda j: j["state"] in TERMINAL,
        view=view,
        max_seconds=max_seconds,
        min_interval=min_interval,
        keepalive=keepalive,
        urgent=lambda data: data in TERMINAL,
        alive=alive,
    )


def spread_wait(seconds: float, draw: Callable[[], float] = random.random) -> float:
    """A long poll's timeout, less a random share of up to :data:`WAIT_SPREAD`. Polls asked
    together (pages opened at once, or reconnecting after a restart) would otherwise all
    time out in the same instant and be asked again at once: 1,000 ``?wait=60`` polls
    expiring together held a gevent process ~2 s, and a ``/healthz`` behind them waited
    1.9 s (nginx's own timing, bench/crowd.py; 18 ms p99 otherwise). Spread over the last
    15 s of 60 (6 s still left 220 ms answers), they stay spread: each new ask draws again."""
    return seconds * (1.0 - WAIT_SPREAD * draw())


def wait_for_end(jobs: JobStore, subscribe: Subscribe, job_id: str, timeout: float) -> AnyJob | None:
    """``?wait=``: the job once it ends, or as it is after ``timeout`` seconds (``None``
    if it is gone). The job's channel carries its new state: only an end, or a missed
    stretch (:data:`RESYNC`), is worth reading the job again for."""
    with subscribe(redis_keys.job_events(job_id)) as sub:
        deadline = time.monotonic() + timeout
        job = jobs.get(job_id)  # after subscribing: it may have ended just before
        while job is not None and job["state"] not in TERMINAL and not draining():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data = sub.get(timeout=min(left, 1.0))
            if data == RESYNC or data in TERMINAL:
                job = jobs.get(job_id)
    return job


def _follow(
    subscribe: Subscribe,
    channel: str,
    *,
    read: Callable[[], T | None],
    ended: Callable[[T], bool],
    view: Callable[[T], dict[str, Any]],
    max_seconds: float,
    min_interval: float,
    keepalive: float,
    on_message: Callable[[str], Iterator[str]] = lambda data: iter(()),
    urgent: Callable[[str], bool] = lambda data: False,
    alive: Callable[[], bool] = _always,
) -> Iterator[str]:
    """The stream both follow: subscribe first, then a snapshot (``progress``, and ``end``
    at once if it is over), then a fresh view at most every ``min_interval`` while
    messages arrive (at once for an ``urgent`` one), ``end`` when it is over; a comment
    line every ``keepalive`` seconds of silence; closed after ``max_seconds``, or within
    a second once the process drains (the client reconnects to a live one), or with an
    ``error`` event within ``KEY_RECHECK_SECONDS`` once its key is revoked (EventSource
    then reconnects, gets 401 and stops)."""
    with subscribe(channel) as sub:
        yield "retry: 2000\n\n"
        obj = read()
        if obj is None:
            return
        yield _event("progress", view(obj))
        if ended(obj):
            yield _event("end", view(obj))
            return
        deadline = time.monotonic() + max_seconds
        last_progress = last_sent = checked = time.monotonic()
        dirty = now_please = False
        while time.monotonic() < deadline and not draining():
            data = sub.get(timeout=min(1.0, min_interval))
            now = time.monotonic()
            if now - checked >= KEY_RECHECK_SECONDS:
                checked = now
                if not alive():
                    yield _event("error", {"code": "unauthorized", "message": "the API key was revoked"})
                    return
            if data == RESYNC:  # messages may have been missed: read it again now
                dirty = now_please = True
            elif data is not None:
                dirty = True
                now_please = now_please or urgent(data)
                for event in on_message(data):
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
