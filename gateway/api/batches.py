"""Batches of any size: create, stream photos in (files or ZIP/TAR), follow them (view, items,
Server-Sent Events), delete. Steering them is batch_controls.py; their outputs, batch_exports.py."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, g, jsonify, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.file import FileStorage
from flask_openapi3.models.tag import Tag
from pydantic import Field
from werkzeug.datastructures import FileStorage as Upload

from gateway import callback_urls, quotas
from gateway.api.locations import created
from gateway.api.models import MAX_OFFSET, Id, RequestModel
from gateway.api.views import batch_view, item_view
from gateway.batch_items import add_files
from gateway.context import Kadr, kadr
from gateway.errors import ApiError, register_form_model
from gateway.photo_plans import enhance_params
from gateway.responses import BatchesPage, BatchView, Deleted, ErrorBody, ItemsAdded, ItemsPage, event_stream
from gateway.sse import batch_events, event_response
from services.contracts import redis_keys
from services.contracts.records import Batch, JobState
from services.contracts.schemas import BatchCreate
from services.contracts.tasks import ENHANCE_PHOTO
from services.platform.metrics import JOBS_ACCEPTED
from services.store.connection import decoded
from services.store.jobs import new_id
from services.store.purge import purge_batch

bp = APIBlueprint(
    "batches", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="batches")], abp_security=[{"bearer": []}]
)

TASK_FOR_KIND = {"enhance": ENHANCE_PHOTO}
# How long an Idempotency-Key of POST /batches is remembered, and how long after it was
# first used a missing batch means "still being created" rather than "gone".
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
IDEMPOTENCY_CREATING_SECONDS = 30


class BatchPath(RequestModel):
    batch_id: Id


class ViewQuery(RequestModel):
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    limit: int = Field(100, ge=0, le=1000, description="items shown inline, 0–1000 (0: counts only)")


class ItemsQuery(RequestModel):
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    limit: int = Field(1000, ge=1, le=10000, description="items per page, 1–10000")
    state: JobState | None = None


class ListQuery(RequestModel):
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    limit: int = Field(50, ge=1, le=500, description="1–500")


class ItemsForm(RequestModel):
    files: list[FileStorage]


register_form_model(ItemsForm)


def owned_batch(batch_id: str, *, rate: bool = True) -> Batch:
    batch = kadr().batches.get_owned(batch_id, g.owner, rate=rate)
    if batch is None:
        raise ApiError(404, "not_found", f"no batch {batch_id}")
    return batch


def create_batch(k: Kadr, spec: BatchCreate, batch_id: str | None = None) -> Batch:
    params = enhance_params(k, spec.params)
    # Each variant's params are complete (merged and validated), so items need no merging rules.
    variants: list[dict[str, Any]] = [
        {"name": v.name, "params": enhance_params(k, {**spec.params, **v.params})} for v in spec.variants
    ]
    if len({v["name"].lower() for v in variants}) != len(variants):
        raise ApiError(400, "invalid_parameters", "variant names must be unique")
    batch = k.batches.create(
        kind=spec.kind,
        owner=g.owner,
        params=params,
        variants=variants or None,
        name=spec.name,
        ttl_seconds=spec.ttl_seconds,
        request_id=g.request_id,
        task=TASK_FOR_KIND[spec.kind],
        callback_url=callback_urls.checked(k, spec.callback_url),
        batch_id=batch_id,
    )
    assert batch is not None  # read back just after its write
    return batch


@bp.post(
    "/batches",
    summary="Create a batch (parameters once, optional variants); then add photos and close it. "
    "With an Idempotency-Key header a retried create answers 200 with the same batch",
    responses={
        201: BatchView,
        200: BatchView,
        400: ErrorBody,
        409: ErrorBody,
        422: ErrorBody,
        429: ErrorBody,
        507: ErrorBody,
    },
)
def post_batch(body: BatchCreate) -> Response:
    k = kadr()
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        k.storage.check()
        quotas.check_new_batch(k, g.owner)
        batch = create_batch(k, body)
        return created(batch_view(batch), f"/api/v1/batches/{batch['id']}")
    if len(key) > 255:
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key: at most 255 characters")
    # A client that lost the answer sends the same create again: it must get the batch it
    # already made, not a second, empty one left open until its TTL.
    slot = redis_keys.batch_idempotency(g.owner, key)
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    bid = new_id()
    if k.redis.set(slot, f"{bid} {fingerprint}", nx=True, ex=IDEMPOTENCY_TTL_SECONDS):
        try:
            k.storage.check()
            quotas.check_new_batch(k, g.owner)
            batch = create_batch(k, body, batch_id=bid)
        except BaseException:
            k.redis.delete(slot)  # nothing was made: the key is free for the corrected request
            raise
        return created(batch_view(batch), f"/api/v1/batches/{bid}")
    prior_bid, _, prior_fingerprint = (decoded(k.redis.get(slot)) or "").partition(" ")
    if prior_fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with another request body")
    prior = k.batches.get_owned(prior_bid, g.owner)
    if prior is None:
        age = IDEMPOTENCY_TTL_SECONDS - k.redis.ttl(slot)
        if age < IDEMPOTENCY_CREATING_SECONDS:
            raise ApiError(
                409,
                "idempotency_in_progress",
                "the first request with this Idempotency-Key is still creating the batch",
                headers={"Retry-After": "1"},
            )
        raise ApiError(404, "not_found", f"the batch this Idempotency-Key created ({prior_bid}) is gone")
    resp = created(batch_view(prior), f"/api/v1/batches/{prior_bid}", status=200)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/batches", summary="Your batches, newest first", responses={200: BatchesPage, 401: ErrorBody})
def list_batches(query: ListQuery) -> Response:
    batches = kadr().batches.list_owned(g.owner, query.offset, query.limit)
    return jsonify({"batches": [batch_view(b) for b in batches], "offset": query.offset})


@bp.post(
    "/batches/<batch_id>/items",
    summary="Add photos: image files, or ZIP/TAR archives unpacked here "
    "(each entry checked like an upload); any number of requests, in parallel",
    responses={
        202: ItemsAdded,
        400: ErrorBody,
        404: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        429: ErrorBody,
        507: ErrorBody,
    },
)
def post_items(path: BatchPath, form: ItemsForm) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id, rate=False)
    k.storage.check()
    files: list[Upload] = [f for f in form.files if f.filename or f.content_length]
    if not files:
        raise ApiError(400, "no_files", "send at least one file in the 'files' field")
    if len(files) > k.settings.max_batch_files:
        raise ApiError(
            400,
            "too_many_files",
            f"{len(files)} files in one request; at most "
            f"{k.settings.max_batch_files} (send more requests, or one ZIP/TAR)",
        )
    out = add_files(k, batch, files, g.request_id)
    new = sum(1 for a in out["accepted"] if not a["existing"])
    if new:
        JOBS_ACCEPTED.labels(kind="batch_item").inc(new)
        k.feeder.feed(batch["id"])
    if not out["accepted"] and out["rejected"]:
        codes = {r["code"] for r in out["rejected"]}
        status = (
            413
            if codes <= {"file_too_large", "too_many_pixels", "archive_too_large"}
            else 415
            if codes <= {"unsupported_format", "not_an_image"}
            else 400
        )
        raise ApiError(
            status,
            "no_photo_accepted",
            f"{len(out['rejected'])} file(s) refused: " + "; ".join(r["message"] for r in out["rejected"][:5]),
            details=out["rejected"],
        )
    resp = jsonify(out)
    resp.status_code = 202
    return resp


@bp.get(
    "/batches/<batch_id>",
    summary="Counts, progress, throughput, ETA (and a page of items)",
    responses={200: BatchView, 404: ErrorBody},
)
def get_batch(path: BatchPath, query: ViewQuery) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    ids = k.batches.item_ids(batch["id"], query.offset, query.limit) if query.limit else []
    body = batch_view(batch, [j for j in k.jobs.get_many(ids) if j is not None])
    body["items_offset"] = query.offset
    return jsonify(body)


@bp.get(
    "/batches/<batch_id>/items",
    summary="Items in upload order, a page at a time, optionally by state",
    responses={200: ItemsPage, 404: ErrorBody},
)
def get_items(path: BatchPath, query: ItemsQuery) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    ids = k.batches.item_ids(batch["id"], query.offset, query.limit)
    jobs = [j for j in k.jobs.get_many(ids) if j is not None]
    if query.state:
        jobs = [j for j in jobs if j["state"] == query.state]
    nxt = query.offset + len(ids) if len(ids) == query.limit else None
    return jsonify({"items": [item_view(j) for j in jobs], "offset": query.offset, "next_offset": nxt})


@bp.get(
    "/batches/<batch_id>/events",
    summary="Live progress as Server-Sent Events (progress, item, end)",
    responses={200: event_stream("progress, item and end events"), 404: ErrorBody, 429: ErrorBody, 503: ErrorBody},
)
def get_events(path: BatchPath) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    return event_response(
        k,
        lambda subscribe, alive: batch_events(
            k.batches,
            batch["id"],
            subscribe=subscribe,
            view=batch_view,
            item_view=item_view,
            max_seconds=k.settings.sse_max_seconds,
            alive=alive,
        ),
    )


@bp.delete(
    "/batches/<batch_id>",
    summary="Cancel a batch and delete it with its files",
    responses={200: Deleted, 404: ErrorBody},
)
def delete_batch(path: BatchPath) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    removed = purge_batch(k.batches, k.blobs, batch["id"])
    return jsonify({"id": batch["id"], "deleted": True, "files_removed": removed})
