"""One Redis subscription per gateway process for every open stream and long poll.

Jobs and batches announce their changes on ``kadr:job:<id>:events`` and
``kadr:batch:<id>:events``. Subscribing once per waiter would cost a Redis connection
(and a file descriptor at each end) per open progress page: 2,000 waiters, 2,000
connections. Instead one reader per process holds a single pattern subscription to
``kadr:*:events`` (``redis_keys.EVENTS_PATTERN``) and hands each message to the waiters
registered for its channel. Every job's announcements reach every gateway process; they
are a few short messages a second per running job, worth far less than a connection per
waiter.

A waiter registers before it reads its snapshot, so nothing between the two is lost. When
the reader's connection drops, what was published meanwhile is gone: every waiter then
gets :data:`RESYNC` and reads its object again. Written with ``threading`` and ``queue``
only, so it serves gthread workers as is and gevent workers once they are patched.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import redis

from services.contracts import redis_keys

log = logging.getLogger("kadr.gateway")

RESYNC = "\x00resync"  # not a message anyone publishes: "read the object again"


class Subscription:
    """What one waiter receives: message data strings, :data:`RESYNC`, or ``None`` when
    ``timeout`` passed with nothing."""

    def __init__(self, fanout: Fanout, channel: str):
        self.fanout, self.channel = fanout, channel
        self._q: queue.Queue[str] = queue.Queue()

    def get(self, timeout: float) -> str | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def put(self, data: str) -> None:
        self._q.put(data)

    def close(self) -> None:
        self.fanout._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Fanout:
    def __init__(self, connect: Callable[[], redis.Redis], *, ready_timeout: float = 5.0):
        self._connect, self.ready_timeout = connect, ready_timeout
        self._subs: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def subscribe(self, channel: str) -> Subscription:
        """Messages on ``channel`` from now on. Waits (briefly) for the reader's first
        subscription, so a snapshot read after this call misses nothing."""
        sub = Subscription(self, channel)
        with self._lock:
            self._subs.setdefault(channel, set()).add(sub)
            if self._reader is None or not self._reader.is_alive():
                # Started on first use: in the process that serves (gunicorn forks first).
                self._reader = threading.Thread(target=self._run, name="kadr-fanout", daemon=True)
                self._reader.start()
        if not self._ready.wait(self.ready_timeout):
            sub.put(RESYNC)  # Redis away: read again once it answers
        return sub

    def waiters(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.channel]

    def _broadcast(self, data: str, channel: str | None = None) -> None:
        """To the waiters of ``channel`` (a lookup: this runs for every message), or to all."""
        with self._lock:
            if channel is None:
                targets = [s for subs in self._subs.values() for s in subs]
            else:
                targets = list(self._subs.get(channel, ()))
        for s in targets:
            s.put(data)

    def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = None
            try:
                pubsub = self._connect().pubsub(ignore_subscribe_messages=False)
                pubsub.psubscribe(redis_keys.EVENTS_PATTERN)
                while True:
                    msg = pubsub.get_message(timeout=5.0)
                    if msg is None:
                        continue
                    if msg["type"] == "psubscribe":
                        # First subscription, or redis-py's own resubscription after a
                        # reconnect: anything published in between was missed.
                        self._ready.set()
                        self._broadcast(RESYNC)
                        backoff = 0.1
                    elif msg["type"] == "pmessage":
                        self._broadcast(msg["data"], msg["channel"])
            except Exception as e:  # Redis away: every waiter re-reads once it is back
                self._ready.clear()
                log.warning("event subscription lost; reconnecting", extra={"error": str(e)})
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
