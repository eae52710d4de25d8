"""A key's videos, each video's result sets compared (the study as a report), and a
result set's masks out: ``GET /api/v1/videos``, ``/videos/{id}/report`` (JSON or CSV),
``/videos/{id}/frames.csv`` (per-frame series), ``/videos/{id}/masks.zip`` (PNGs,
streamed) and ``/videos/{id}/matte.mov`` (a lossless matte editors open)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response, g, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import Field
from zipstream import ZIP_STORED, ZipStream

from gateway import video_report
from gateway.api.jobs import ListQuery
from gateway.api.models import RequestModel
from gateway.api.videos import ResultQuery, VideoPath, _result_file, owned_video
from gateway.api.views import video_view
from gateway.blob_files import send_blob
from gateway.context import kadr
from gateway.responses import ErrorBody, binary
from gateway.video_responses import VideoReport, VideosPage
from services.contracts import blob_keys
from services.store.blobs import BlobNotFound

bp = APIBlueprint(
    "video_reports", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="videos")], abp_security=[{"bearer": []}]
)


class ReportQuery(RequestModel):
    format: str = Field("json", pattern="^(json|csv)$", description="json or csv")


@bp.get(
    "/videos", summary="Your videos, newest first, with their result sets", responses={200: VideosPage, 401: ErrorBody}
)
def list_videos(query: ListQuery) -> Response:
    k = kadr()
    videos, total = k.jobs.list_videos(g.owner, offset=query.offset, limit=query.limit)
    return jsonify(
        {
            "videos": [video_view(v, k.jobs.children(v["id"])) for v in videos],
            "total": total,
            "offset": query.offset,
            "limit": query.limit,
        }
    )


@bp.get(
    "/videos/<video_id>/report",
    summary="Every result set side by side: instability, flow-warped "
    "consistency, IoU vs truth, Dice, lag, improvement % (JSON or CSV)",
    responses={200: VideoReport, 404: ErrorBody},
)
def get_report(path: VideoPath, query: ReportQuery) -> Response:
    k = kadr()
    video = owned_video(path.video_id)
    rows = []
    for rs in k.jobs.children(video["id"]):
        try:
            metrics = json.loads(k.blobs.get_bytes(blob_keys.result_file(video["id"], rs["id"], "metrics.json")))
        except BlobNotFound:
            metrics = None  # not finished (or failed): a row without numbers
        rows.append(video_report.row(rs, metrics))
    if query.format == "csv":
        return Response(
            video_report.report_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="kadr-video-{video["id"][:8]}-report.csv"'},
        )
    return jsonify(video_report.report(video, rows))


@bp.get(
    "/videos/<video_id>/frames.csv",
    summary="One result set's per-frame series (raw and stabilized) as CSV",
    responses={200: binary("text/csv", "one row per frame"), 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_frames_csv(path: VideoPath, query: ResultQuery) -> Response:
    chosen, key = _result_file(path.video_id, query.result, "metrics.json")
    metrics = json.loads(kadr().blobs.get_bytes(key))
    return Response(
        video_report.frames_csv(metrics),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="kadr-result-{chosen["id"][:8]}-frames.csv"'},
    )


@bp.get(
    "/videos/<video_id>/masks.zip",
    summary="A result set's masks as PNGs (white = the object), one per frame, streamed",
    responses={200: binary("application/zip", "frame_000000.png ..."), 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_masks_zip(path: VideoPath, query: ResultQuery) -> Response:
    chosen, key = _result_file(path.video_id, query.result, "metrics.json")
    blobs = kadr().blobs
    frames = int(json.loads(blobs.get_bytes(key))["frames"])
    prefix = key.rsplit("/", 1)[0]

    def entries() -> Iterator[bytes]:
        # PNGs are compressed already: stored entries, one file's chunks at a time.
        zs = ZipStream(compress_type=ZIP_STORED)
        for i in range(frames):
            mask = f"{prefix}/mask/{i:06d}.png"
            zs.add(blobs.iter_chunks(mask), f"frame_{i:06d}.png", size=blobs.size(mask))
        yield from zs

    name = f"kadr-masks-{chosen['params']['method']}-{chosen['id'][:8]}.zip"
    return Response(
        entries(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Accel-Buffering": "no"},
    )


@bp.get(
    "/videos/<video_id>/matte.mov",
    summary="A result set's masks as a lossless grayscale matte video "
    "(QuickTime Animation in .mov, white = the object)",
    responses={200: binary("video/quicktime", "the matte"), 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_matte(path: VideoPath, query: ResultQuery) -> Response:
    chosen, key = _result_file(path.video_id, query.result, "matte.mov")
    return send_blob(
        key,
        "video/quicktime",
        etag=f"matte-{chosen['id']}",
        download_name=f"matte-{chosen['params']['method']}-{chosen['id'][:8]}.mov",
    )
