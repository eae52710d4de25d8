"""Room for new work: Redis's high-water mark and the blob store's free-space floor.

Redis holds every job and runs ``noeviction``: once it reaches ``maxmemory`` every write
fails, for every key, and so would the cancels and deletes that free space. Requests that
create work are therefore refused earlier, at ``redis_high_water`` of ``maxmemory``
(507 ``storage_full``), and the rest stays for the workers' results, cancels and deletes.
A write that races past the mark anyway and meets Redis's own refusal gets the same
answer (errors.py) instead of a 500.

The reading (INFO memory) is shared by a process's requests for up to
``redis_memory_check_seconds``: at 1 s and a few MB a second of new records it is the
margin the mark leaves, not the check, that protects Redis.

The blob store's disk gets the same treatment: below ``storage_free_floor_bytes`` of free
space new uploads and camera events are refused (507 ``storage_full``), and the floor is
left to the work already accepted, which still writes its results. Both come back by
themselves: the next reading after space is freed lets work in again.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from gateway.errors import ApiError
from services.platform.metrics import STORAGE_FULL
from services.store.blobs import BlobStore

log = logging.getLogger("kadr.gateway")

RETRY_AFTER = "60"


ADVICE = "delete finished batches, videos or jobs, or ask the operator for more (Redis maxmemory)"


def storage_full(used: int, limit: int, mark: float) -> ApiError:
    return ApiError(
        507,
        "storage_full",
        f"the job store is full ({used / 2**20:.0f} of {limit / 2**20:.0f} MiB, new work stops "
        f"at {mark:.0%}); {ADVICE}",
        details={"used_bytes": used, "maxmemory_bytes": limit},
        headers={"Retry-After": RETRY_AFTER},
    )


def redis_refused() -> ApiError:
    """Redis itself refused a write (maxmemory reached between two readings)."""
    log.error("Redis refused a write: maxmemory reached")
    return ApiError(507, "storage_full", f"the job store is full; {ADVICE}", headers={"Retry-After": RETRY_AFTER})


def disk_full(free: int, floor: int) -> ApiError:
    return ApiError(
        507,
        "storage_full",
        f"the file store is nearly full ({free / 2**20:.0f} MiB free, new work stops below "
        f"{floor / 2**20:.0f} MiB); delete finished batches, videos, jobs or camera events, "
        "or ask the operator for more disk (KADR_STORAGE_FREE_FLOOR_BYTES)",
        details={"free_bytes": free, "floor_bytes": floor},
        headers={"Retry-After": RETRY_AFTER},
    )


class StorageGuard:
    def __init__(
        self,
        probe: redis.Redis,
        *,
        high_water: float,
        max_age_seconds: float,
        blobs: BlobStore | None = None,
        free_floor: int = 0,
    ):
        self.probe, self.high_water, self.max_age = probe, high_water, max_age_seconds
        self.blobs, self.free_floor = blobs, free_floor
        self._lock = threading.Lock()
        self._read_at = self._disk_read_at = -1e9
        self._used = self._max = 0
        self._free: int | None = None

    def _free_bytes(self) -> int | None:
        with self._lock:
            if time.monotonic() - self._disk_read_at >= self.max_age:
                self._free = self.blobs.free_bytes() if self.blobs is not None else None
                self._disk_read_at = time.monotonic()
            return self._free

    def _reading(self) -> tuple[int, int]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                info = self.probe.info("memory")
                self._used, self._max = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
                self._read_at = time.monotonic()
            return self._used, self._max

    def check(self) -> None:
        """507 ``storage_full`` below the disk's floor or past Redis's mark. Redis
        unreachable or without a maxmemory: nothing to guard there (the write itself
        answers 503, or Redis has room)."""
        if self.free_floor:
            free = self._free_bytes()
            if free is not None and free < self.free_floor:
                STORAGE_FULL.labels(store="blobs").inc()
                log.warning(
                    "new work refused: the file store is below its free-space floor",
                    extra={"free_bytes": free, "floor_bytes": self.free_floor},
                )
                raise disk_full(free, self.free_floor)
        try:
            used, limit = self._reading()
        except redis.RedisError:
            return
        if limit and used >= self.high_water * limit:
            STORAGE_FULL.labels(store="redis").inc()
            log.warning(
                "new work refused: the job store is past its high-water mark",
                extra={"used_bytes": used, "maxmemory_bytes": limit},
            )
            raise storage_full(used, limit, self.high_water)
