"""Redis's high-water mark: new work is refused before Redis is full.

Redis holds every job and runs ``noeviction``: once it reaches ``maxmemory`` every write
fails, for every key, and so would the cancels and deletes that free space. Requests that
create work are therefore refused earlier, at ``redis_high_water`` of ``maxmemory``
(507 ``storage_full``), and the rest stays for the workers' results, cancels and deletes.
A write that races past the mark anyway and meets Redis's own refusal gets the same
answer (errors.py) instead of a 500.

The reading (INFO memory) is shared by a process's requests for up to
``redis_memory_check_seconds``: at 1 s and a few MB a second of new records it is the
margin the mark leaves, not the check, that protects Redis.
"""
from __future__ import annotations

import logging
import threading
import time

import redis

from gateway.errors import ApiError

log = logging.getLogger("kadr.gateway")

RETRY_AFTER = "60"


ADVICE = "delete finished batches, videos or jobs, or ask the operator for more (Redis maxmemory)"


def storage_full(used: int, limit: int, mark: float) -> ApiError:
    return ApiError(507, "storage_full",
                    f"the job store is full ({used / 2**20:.0f} of {limit / 2**20:.0f} MiB, new work stops "
                    f"at {mark:.0%}); {ADVICE}", details={"used_bytes": used, "maxmemory_bytes": limit},
                    headers={"Retry-After": RETRY_AFTER})


def redis_refused() -> ApiError:
    """Redis itself refused a write (maxmemory reached between two readings)."""
    log.error("Redis refused a write: maxmemory reached")
    return ApiError(507, "storage_full", f"the job store is full; {ADVICE}", headers={"Retry-After": RETRY_AFTER})


class StorageGuard:
    def __init__(self, probe: redis.Redis, *, high_water: float, max_age_seconds: float):
        self.probe, self.high_water, self.max_age = probe, high_water, max_age_seconds
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._used = self._max = 0

    def _reading(self) -> tuple[int, int]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                info = self.probe.info("memory")
                self._used, self._max = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
                self._read_at = time.monotonic()
            return self._used, self._max

    def check(self) -> None:
        """507 ``storage_full`` past the mark. Redis unreachable or without a maxmemory:
        nothing to guard here (the write itself answers 503, or Redis has room)."""
        try:
            used, limit = self._reading()
        except redis.RedisError:
            return
        if limit and used >= self.high_water * limit:
            log.warning("new work refused: the job store is past its high-water mark",
                        extra={"used_bytes": used, "maxmemory_bytes": limit})
            raise storage_full(used, limit, self.high_water)
