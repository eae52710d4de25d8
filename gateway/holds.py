"""Connections a client holds open: SSE streams and ``?wait=`` long polls.

Each is cheap in an evented worker but not free (a socket at nginx and here, a greenlet,
a queue), so two caps bound them: per key across every gateway process (a sorted set in
Redis, scored by when each hold lapses, so a process that dies leaves nothing counted for
long), answered 429 ``too_many_streams``; and per process, below its file descriptors and
memory, answered 503 ``server_busy`` with ``Retry-After`` (another process or a moment
later may have room).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import redis

from gateway.errors import ApiError
from services.contracts import redis_keys
from services.platform.metrics import OPEN_STREAMS

log = logging.getLogger("kadr.gateway")

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class Holds:
    def __init__(self, r: redis.Redis, *, per_key: int, per_process: int, longest_seconds: float):
        self.r, self.per_key, self.per_process = r, per_key, per_process
        self.longest = longest_seconds  # a hold lapses by itself after this (+ a margin)
        self._open = 0
        self._lock = threading.Lock()

    key = staticmethod(redis_keys.holds)

    def open(self) -> int:
        return self._open

    def acquire(self, owner: str) -> Callable[[], None]:
        """Room for one more hold, or an :class:`ApiError`; returns its release (idempotent)."""
        with self._lock:
            if self._open >= self.per_process:
                raise ApiError(
                    503,
                    "server_busy",
                    f"this gateway process holds {self._open} open streams "
                    f"and long polls (KADR_MAX_OPEN_STREAMS={self.per_process}); retry shortly",
                    headers={"Retry-After": "5"},
                )
            self._open += 1
        OPEN_STREAMS.inc()
        member, now = uuid.uuid4().hex, time.time()
        lapse = now + self.longest + 30
        try:
            ok = self.r.eval(_ACQUIRE, 1, self.key(owner), now, lapse, member, self.per_key, int(self.longest) + 60)
        except Exception:
            self._release_local()
            raise
        if not ok:
            self._release_local()
            raise ApiError(
                429,
                "too_many_streams",
                f"this key already holds {self.per_key} open streams and "
                f"long polls (KADR_MAX_STREAMS_PER_KEY); close some first",
                headers={"Retry-After": "5"},
            )
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._release_local()
            try:
                self.r.zrem(self.key(owner), member)
            except Exception:  # Redis away: the entry lapses by its score
                log.warning("stream hold not released in Redis; it lapses by itself", exc_info=True)

        return release

    def _release_local(self) -> None:
        with self._lock:
            self._open -= 1
        OPEN_STREAMS.dec()


class Held:
    """A response body that gives its hold back when the server closes it (WSGI calls
    ``close()`` whether the body ran to its end, the client left, or it never started)."""

    def __init__(self, body: Iterable[str], release: Callable[[], None]):
        self._it: Iterator[str] = iter(body)
        self._body, self._release = body, release

    def __iter__(self) -> Held:
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()
