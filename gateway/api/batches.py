"""GET /api/v1/batches/{id} and its streamed ZIP archive."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, g, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from zipstream import ZIP_STORED, ZipStream

from gateway.api.views import batch_view
from gateway.context import kadr
from gateway.errors import ApiError
from services.common import images
from services.common.filenames import sanitize_filename, unique_names
from services.common.schemas import BatchView, ErrorBody
from services.common.storage import BlobNotFound

bp = APIBlueprint("batches", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="batches")],
                  abp_security=[{"bearer": []}])


class BatchPath(BaseModel):
    batch_id: str = Field(..., max_length=64)


class ItemsQuery(BaseModel):
    offset: int = Field(0, ge=0)
    limit: int = Field(1000, ge=0, le=10000, description="items per page, 0–10000")


def owned_batch(batch_id: str) -> dict:
    batch = kadr().jobs.get_batch_owned(batch_id, g.owner)
    if batch is None:
        raise ApiError(404, "not_found", f"no batch {batch_id}")
    return batch


@bp.get("/batches/<batch_id>", summary="Counts, progress and per-item state of a batch",
        responses={200: BatchView, 404: ErrorBody})
def get_batch(path: BatchPath, query: ItemsQuery):
    k = kadr()
    batch = owned_batch(path.batch_id)
    ids = k.jobs.batch_item_ids(batch["id"], query.offset, query.limit) if query.limit else []
    items = [j for j in k.jobs.get_many(ids) if j is not None]
    body = batch_view(batch, items)
    body["items_offset"] = query.offset
    return jsonify(body)


def archive_entries(jobs: list[dict]) -> list[tuple[str, str]]:
    """(blob key, entry name) for each finished item; names sanitised and de-duplicated."""
    done = [j for j in jobs if j and j["state"] == "succeeded" and j.get("result")]
    names = []
    for j in done:
        stem = sanitize_filename((j.get("input") or {}).get("name", "image")).rsplit(".", 1)[0]
        names.append(f"{stem}.{images.FORMAT_EXTENSION[j['result']['format']]}")
    return [(j["result"]["blob"], n) for j, n in zip(done, unique_names(names))]


@bp.get("/batches/<batch_id>/archive", summary="ZIP of the finished outputs, streamed",
        responses={404: ErrorBody})
def get_archive(path: BatchPath):
    k = kadr()
    batch = owned_batch(path.batch_id)
    entries = archive_entries(k.jobs.get_many(k.jobs.batch_item_ids(batch["id"])))
    if not entries:
        raise ApiError(409, "nothing_finished", "no item of this batch has finished yet")
    blobs = k.blobs

    def generate():
        # Images are already compressed: store them, and never hold the archive in memory.
        zs = ZipStream(compress_type=ZIP_STORED)
        for key, name in entries:
            try:
                size = blobs.size(key)
            except BlobNotFound:
                continue
            zs.add(blobs.iter_chunks(key), name, size=size)
        yield from zs

    fname = sanitize_filename(f"kadr-batch-{batch['id'][:8]}.zip")
    return Response(generate(), mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(fname)}"})
