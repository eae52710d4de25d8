"""Steering a batch: close it (no more photos), pause and resume it, cancel what has not
started, run its failed items again. Each answers the batch as it now stands."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from gateway.api.batches import BatchPath, owned_batch
from gateway.api.operation_ids import named_for
from gateway.api.views import batch_view
from gateway.context import kadr
from gateway.errors import ApiError
from gateway.responses import BatchView, ErrorBody
from services.contracts.records import Batch

bp = APIBlueprint(
    "batch_controls",
    __name__,
    url_prefix="/api/v1",
    abp_tags=[Tag(name="batches")],
    abp_security=[{"bearer": []}],
    operation_id_callback=named_for("batches"),
)


def _control(batch: Batch, action: str) -> dict[str, Any]:
    k = kadr()
    bid = batch["id"]
    if action == "close":
        k.batches.close(bid)
    elif action == "pause":
        k.batches.set_paused(bid, True)
    elif action == "resume":
        k.batches.set_paused(bid, False)
        k.feeder.feed(bid)
    elif action == "cancel":
        k.batches.cancel(bid)
    elif action == "retry":
        if batch["canceled"]:
            raise ApiError(409, "batch_canceled", "a canceled batch cannot be retried")
        if k.batches.retry_failed(bid, k.settings.max_deliveries):
            k.batches.reactivate(bid)
            k.feeder.feed(bid)
    now = k.batches.get(bid)
    assert now is not None  # owned a moment ago
    return batch_view(now)


def _control_route(action: str, summary: str) -> None:
    def view(path: BatchPath) -> Response:
        return jsonify(_control(owned_batch(path.batch_id), action))

    view.__name__ = f"batch_{action}"
    bp.post(
        f"/batches/<batch_id>/{action}", summary=summary, responses={200: BatchView, 404: ErrorBody, 409: ErrorBody}
    )(view)


for _action, _summary in (
    ("close", "No more photos: the batch ends when its last item ends"),
    ("pause", "Running items finish; no new item starts"),
    ("resume", "Start items again"),
    ("cancel", "Items not started end canceled; running ones finish"),
    ("retry", "Run the failed items again (only those)"),
):
    _control_route(_action, _summary)
