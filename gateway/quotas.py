"""Per-key quotas: one key cannot fill Redis or take the workers from the others.

Counted from what Redis already keeps (each batch's state counters, a key's jobs outside
batches), not from counters of their own that a crash could leave wrong. An upload
checks them when it starts and again every ``RECHECK`` photos, so requests of one key
running in parallel pass a quota by at most that many photos each.
"""

from __future__ import annotations

from gateway.context import Kadr
from gateway.errors import ApiError
from services.contracts.records import Batch

RECHECK = 100  # photos of one request between two reads of the key's load
RETRY_AFTER = "30"  # items and batches end by themselves: worth trying again soon


def check_new_batch(k: Kadr, owner: str, adding: int = 0) -> None:
    """Before a batch is created (with ``adding`` items at once), from one read of the
    key's load: 429 ``too_many_open_batches`` at the limit, ``too_many_in_flight`` past it."""
    batches, items = k.batches.owner_load(owner)
    limit = k.settings.max_open_batches_per_key
    if batches >= limit:
        raise ApiError(
            429,
            "too_many_open_batches",
            f"this key has {batches} batches not yet ended (limit {limit}, "
            "KADR_MAX_OPEN_BATCHES_PER_KEY); close or cancel one, or wait for one to end",
            details={"open_batches": batches, "limit": limit},
            headers={"Retry-After": RETRY_AFTER},
        )
    if adding and items + adding > k.settings.max_items_in_flight_per_key:
        raise in_flight_error(items, adding, k.settings.max_items_in_flight_per_key)


def in_flight_error(in_flight: int, adding: int, limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_in_flight",
        f"this key has {in_flight} items not yet ended and {adding} more would pass its limit "
        f"of {limit} (KADR_MAX_ITEMS_IN_FLIGHT_PER_KEY); send them as these end",
        details={"in_flight": in_flight, "limit": limit},
        headers={"Retry-After": RETRY_AFTER},
    )


def check_in_flight(k: Kadr, owner: str, adding: int = 1) -> None:
    """Before single work is accepted: 429 ``too_many_in_flight`` past the limit."""
    _, items = k.batches.owner_load(owner)
    if items + adding > k.settings.max_items_in_flight_per_key:
        raise in_flight_error(items, adding, k.settings.max_items_in_flight_per_key)


def batch_items_error(total: int, adding: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "too_many_items",
        f"the batch holds {total} items and {adding} more would pass its limit of {limit} "
        "(KADR_MAX_BATCH_ITEMS; items are photos x variants); start another batch",
        details={"items": total, "limit": limit},
    )


class BatchQuota:
    """What one request may still add to a batch: its items (413 ``too_many_items``), the
    key's items in flight (429 ``too_many_in_flight``), and room in Redis (507
    ``storage_full``: one archive can hold 10,000 photos, ~15 MB of records, more than
    the high-water mark leaves). ``take(n)`` before each photo raises the error that
    stops the request."""

    def __init__(self, k: Kadr, batch: Batch):
        self.k, self.owner = k, batch["owner"]
        self.total = batch["total"]
        self.since_check = RECHECK  # read the load before the first photo

    def take(self, n: int) -> None:
        s = self.k.settings
        self.k.storage.check()
        if self.total + n > s.max_batch_items:
            raise batch_items_error(self.total, n, s.max_batch_items)
        if self.since_check >= RECHECK:
            _, self.in_flight = self.k.batches.owner_load(self.owner)
            self.since_check = 0
        if self.in_flight + n > s.max_items_in_flight_per_key:
            raise in_flight_error(self.in_flight, n, s.max_items_in_flight_per_key)

    def took(self, n: int) -> None:
        """``n`` items were added (a retried upload adds none)."""
        self.total += n
        self.in_flight += n
        self.since_check += 1
