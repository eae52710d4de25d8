"""Which batch a ``kadr enhance`` run sends its photos into: the one its state names while
the server still takes items into it, else a new one, created once however often the
request has to be sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from client import entries
from client.http import ApiError, Client
from client.shapes import Batch, NewBatch
from client.state import State


def open_batch(client: Client, state: State, by_item: dict[str, str], log: Callable[[str], object]) -> str | None:
    """The state's batch if it still takes items; forget it if the server lost it (``by_item``,
    the run's index of item ids, is updated in place)."""
    bid = state.batch_id
    if not bid:
        return None
    try:
        batch: Batch = client.get_json(f"/api/v1/batches/{bid}", params={"limit": 0})
    except ApiError as e:
        if e.status != 404:
            raise
        log(f"batch {bid} is gone from the server; its photos go into a new batch")
        entries.forget_batch(state, bid)
        by_item.clear()
        by_item.update(state.by_item())
        return None
    return bid if batch.get("open") else None


def create_batch(client: Client, state: State, kind: str, name: str | None) -> str:
    """A new batch with the state's settings, recorded as the state's batch (not saved)."""
    body: NewBatch = {"kind": kind, "params": state.params}
    if state.variants:
        body["variants"] = state.variants
    if name:
        body["name"] = name
    # One key for every retry of this create: a lost answer does not leave a second batch.
    batch: Batch = client.post_json("/api/v1/batches", body, headers={"Idempotency-Key": uuid.uuid4().hex})
    state.batch_id = batch["id"]
    return batch["id"]
