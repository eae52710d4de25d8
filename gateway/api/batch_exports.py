"""A batch's outputs, at any time, for what is done so far: the manifest (one row per item
and variant) as CSV or JSON lines, and a ZIP of the finished outputs; each streamed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from gateway import exports
from gateway.api.batches import BatchPath, owned_batch
from gateway.api.operation_ids import named_for
from gateway.context import kadr
from gateway.errors import ApiError
from gateway.filenames import sanitize_filename
from gateway.responses import ErrorBody, binary

bp = APIBlueprint(
    "batch_exports",
    __name__,
    url_prefix="/api/v1",
    abp_tags=[Tag(name="batches")],
    abp_security=[{"bearer": []}],
    operation_id_callback=named_for("batches"),
)


def _download(body: Iterator[str] | Iterator[bytes], mimetype: str, filename: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "X-Accel-Buffering": "no"},
    )


@bp.get(
    "/batches/<batch_id>/manifest.csv",
    summary="One row per item and variant, for what exists so far",
    responses={200: binary("text/csv", "the manifest"), 404: ErrorBody},
)
def get_manifest_csv(path: BatchPath) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    return _download(exports.manifest_csv(k.batches, batch["id"]), "text/csv", f"kadr-batch-{batch['id'][:8]}.csv")


@bp.get(
    "/batches/<batch_id>/manifest.jsonl",
    summary="The manifest as JSON lines",
    responses={200: binary("application/x-ndjson", "the manifest"), 404: ErrorBody},
)
def get_manifest_jsonl(path: BatchPath) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    return _download(
        exports.manifest_jsonl(k.batches, batch["id"]), "application/x-ndjson", f"kadr-batch-{batch['id'][:8]}.jsonl"
    )


@bp.get(
    "/batches/<batch_id>/archive",
    summary="ZIP of the outputs finished so far (a folder per variant), streamed",
    responses={200: binary("application/zip", "the outputs"), 404: ErrorBody, 409: ErrorBody},
)
def get_archive(path: BatchPath) -> Response:
    k = kadr()
    batch = owned_batch(path.batch_id)
    if not (batch["counts"]["succeeded"] + batch["counts"]["skipped"]):
        raise ApiError(409, "nothing_finished", "no item of this batch has finished yet")
    return _download(
        exports.archive(k.blobs, k.batches, batch),
        "application/zip",
        sanitize_filename(f"kadr-batch-{batch['id'][:8]}.zip"),
    )
