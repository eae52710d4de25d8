"""GET/DELETE /api/v1/jobs/{id} and the result image."""

from __future__ import annotations

from flask import Response, g, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import Field

from gateway.api.models import MAX_OFFSET, Id, RequestModel
from gateway.api.views import job_view
from gateway.auth import require_scope
from gateway.context import kadr
from gateway.convert import convert
from gateway.errors import ApiError
from gateway.filenames import sanitize_filename
from gateway.responses import Deleted, ErrorBody, JobsPage, JobView, binary, event_stream
from gateway.sse import event_response, job_events, spread_wait, wait_for_end
from services.contracts.records import AnyJob, EnhanceJob, EnhanceResult, PhotoInput
from services.contracts.schemas import OutputFormat
from services.media import images
from services.store.blobs import BlobNotFound
from services.store.jobs import TERMINAL
from services.store.purge import cancel, purge_job

bp = APIBlueprint("jobs", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}])


class JobPath(RequestModel):
    job_id: Id


class JobQuery(RequestModel):
    wait: float = Field(
        0,
        ge=0,
        le=60,
        description="seconds to wait for the job to end, 0–60 (a wait that times out answers in its last quarter)",
    )


class ResultQuery(RequestModel):
    format: OutputFormat | None = Field(None, description="jpeg, png, webp, bmp or tiff")
    download: bool = False


class ListQuery(RequestModel):
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    limit: int = Field(50, ge=1, le=500, description="1–500")


def owned_job(job_id: str) -> AnyJob:
    job = kadr().jobs.get_owned(job_id, g.owner)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    if job["kind"] != "enhance":
        require_scope("video")  # a video's or a result set's id: the key must own videos too
    return job


@bp.get("/jobs", summary="Your most recent single-photo jobs", responses={200: JobsPage, 401: ErrorBody})
def list_jobs(query: ListQuery) -> Response:
    jobs = kadr().jobs.list_owned(g.owner, offset=query.offset, limit=query.limit)
    # Videos and camera events have their own lists; a record older than that rule may
    # still stand in the index until it expires.
    return jsonify({"jobs": [job_view(j) for j in jobs if j["kind"] == "enhance"], "offset": query.offset})


@bp.get(
    "/jobs/<job_id>",
    summary="State, progress, timings, faces and cache hit of a job (?wait=N: answer when it ends or after N seconds)",
    responses={200: JobView, 404: ErrorBody, 429: ErrorBody, 503: ErrorBody},
)
def get_job(path: JobPath, query: JobQuery) -> Response:
    job = owned_job(path.job_id)
    if query.wait and job["state"] not in TERMINAL:
        k = kadr()
        release = k.holds.acquire(g.owner)
        try:
            job = wait_for_end(k.jobs, k.fanout.subscribe, job["id"], spread_wait(query.wait)) or job
        finally:
            release()
    return jsonify(job_view(job))


@bp.get(
    "/jobs/<job_id>/result",
    summary="The output image (format follows the input unless asked)",
    responses={
        200: binary("image/*", "the output image"),
        404: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        422: ErrorBody,
    },
)
def get_result(path: JobPath, query: ResultQuery) -> Response:
    job: EnhanceJob = owned_job(path.job_id)
    if job["state"] != "succeeded":
        raise ApiError(
            409,
            "not_ready",
            f"job is {job['state']}; the result exists once it succeeded",
            details={"state": job["state"]},
        )
    result = job.get("result")
    if result is None or not result.get("blob"):
        raise ApiError(
            404,
            "no_result_file",
            f"a {job.get('kind')} job has no single result file; "
            "see its own resource (a video's result sets: /api/v1/videos/{id})",
        )
    return _image_response(
        result, query, default_name="result", gone="result_gone", name=(job.get("input") or {}).get("name", "result")
    )


@bp.get(
    "/jobs/<job_id>/input",
    summary="The photo as uploaded (the 'before' of a before/after view)",
    responses={
        200: binary("image/*", "the photo as uploaded (or converted)"),
        404: ErrorBody,
        410: ErrorBody,
        413: ErrorBody,
        422: ErrorBody,
    },
)
def get_input(path: JobPath, query: ResultQuery) -> Response:
    job = owned_job(path.job_id)
    inp: PhotoInput | None = job.get("input")
    if not inp or not inp.get("blob"):
        raise ApiError(404, "no_input", "this job has no stored input photo")
    return _image_response(inp, query, default_name="input", gone="input_gone", name=inp.get("name", "input"))


def _image_response(
    stored: PhotoInput | EnhanceResult, query: ResultQuery, *, name: str, default_name: str, gone: str
) -> Response:
    """A stored image (``{"blob", "format"}``) as is, streamed, or converted to ``?format=``."""
    blobs = kadr().blobs
    fmt = query.format or stored["format"]
    stem = sanitize_filename(name or default_name).rsplit(".", 1)[0]
    filename = f"{stem}.{images.FORMAT_EXTENSION[fmt]}"
    headers = {
        "Content-Disposition": f"{'attachment' if query.download else 'inline'}; filename*=UTF-8''{_quote(filename)}",
        "Cache-Control": "private, max-age=3600",
    }
    try:
        if fmt == stored["format"]:
            headers["Content-Length"] = str(blobs.size(stored["blob"]))
            return Response(blobs.iter_chunks(stored["blob"]), mimetype=images.FORMAT_MIME[fmt], headers=headers)
        data = convert(blobs.get_bytes(stored["blob"]), fmt, max_pixels=kadr().settings.max_convert_pixels)
    except BlobNotFound:
        raise ApiError(410, gone, f"the {default_name} file was removed")
    return Response(data, mimetype=images.FORMAT_MIME[fmt], headers=headers)


@bp.get(
    "/jobs/<job_id>/events",
    summary="Live progress of a job as Server-Sent Events (progress, end)",
    responses={200: event_stream("progress and end events"), 404: ErrorBody, 429: ErrorBody, 503: ErrorBody},
)
def get_job_events(path: JobPath) -> Response:
    k = kadr()
    job = owned_job(path.job_id)
    return event_response(
        k,
        lambda subscribe, alive: job_events(
            k.jobs, job["id"], subscribe=subscribe, view=job_view, max_seconds=k.settings.sse_max_seconds, alive=alive
        ),
    )


@bp.post(
    "/jobs/<job_id>/cancel",
    summary="Cancel a queued or running job (a running photo stops at its "
    "next tile or face); the record and the input stay",
    responses={200: JobView, 404: ErrorBody, 409: ErrorBody},
)
def cancel_job(path: JobPath) -> Response:
    k = kadr()
    job = owned_job(path.job_id)
    if job.get("batch_id"):
        raise ApiError(409, "in_batch", "this job belongs to a batch; cancel the batch")
    moved = cancel(k.jobs, job)
    if not moved.moved:
        raise ApiError(
            409,
            "already_ended",
            f"job is {moved.previous or job['state']}; only a queued or running job can be canceled",
            details={"state": moved.previous or job["state"]},
        )
    return jsonify(job_view(k.jobs.get(job["id"]) or job))


@bp.delete(
    "/jobs/<job_id>",
    summary="Delete a job and its files (a video's id: the video with its result sets)",
    responses={200: Deleted, 404: ErrorBody, 409: ErrorBody},
)
def delete_job(path: JobPath) -> Response:
    k = kadr()
    job = owned_job(path.job_id)
    if job.get("batch_id"):
        raise ApiError(409, "in_batch", "this job belongs to a batch; it is removed with the batch")
    removed = purge_job(k.jobs, k.blobs, job)
    return jsonify({"id": job["id"], "deleted": True, "files_removed": removed})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
