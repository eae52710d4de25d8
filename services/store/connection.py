"""The Redis client every kadr process uses (``connect``: a blocking pool, retries across a
Redis restart, decoded replies) and ``decoded``, which tells the type checker so."""

from __future__ import annotations

from typing import Any, overload

import redis


# Replies, as the type checker sees them. Every kadr client decodes its replies
# (``connect``: decode_responses=True), which redis-py's annotations cannot know: they type
# each one ``bytes | str``. ``decoded`` says what a reply is and changes nothing. A range
# of a sorted set is its members (never asked ``withscores`` through here).
@overload
def decoded(reply: dict[bytes | str, bytes | str]) -> dict[str, str]: ...
@overload
def decoded(reply: set[bytes | str]) -> set[str]: ...
@overload
def decoded(reply: list[bytes | str] | list[tuple[bytes | str, Any]] | list[list[Any]]) -> list[str]: ...
@overload
def decoded(reply: bytes | str | None) -> str | None: ...
def decoded(reply: object) -> object:
    return reply


def connect(url: str, *, ride_out_restarts: bool = True, max_connections: int = 100) -> redis.Redis:
    """Commands retry across a Redis restart (~30 s of backoff) instead of failing the
    request or, worse, a finished task's final write, which would leave its job running.
    Probes (readiness) pass ``ride_out_restarts=False``: they must answer at once.

    The pool blocks past ``max_connections``: an evented gateway runs thousands of
    requests at once, each holding a connection only for its commands, and redis-py's
    default pool raises "Too many connections" at 100 instead of making one wait."""
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), 20 if ride_out_restarts else 0)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20 if ride_out_restarts else 2,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=10 if ride_out_restarts else 2,
        socket_connect_timeout=5 if ride_out_restarts else 1,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return redis.Redis(connection_pool=pool)
