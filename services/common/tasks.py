"""Task names, queues, routes and wire payloads: the one place they are declared.

The gateway sends tasks by name (``send_task``) so it never imports a worker package;
the worker registers its functions under the same names. Names are ``<service>.<verb>``
and each service consumes the queue named after it.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

ENHANCE_QUEUE = "enhance"
ENHANCE_PHOTO = "enhance.photo"

SEGMENT_QUEUE = "segment"
SEGMENT_VIDEO = "segment.video"
SEGMENT_STABILIZE = "segment.stabilize"

CAMERA_QUEUE = "camera"
CAMERA_EVENT = "camera.event"

QUEUES: tuple[str, ...] = (ENHANCE_QUEUE, SEGMENT_QUEUE, CAMERA_QUEUE)

TASK_ROUTES: dict[str, dict[str, str]] = {
    ENHANCE_PHOTO: {"queue": ENHANCE_QUEUE},
    SEGMENT_VIDEO: {"queue": SEGMENT_QUEUE},
    SEGMENT_STABILIZE: {"queue": SEGMENT_QUEUE},
    CAMERA_EVENT: {"queue": CAMERA_QUEUE},
}


def queue_for(task_name: str) -> str:
    return TASK_ROUTES[task_name]["queue"]


class TaskPayload(BaseModel):
    """Tasks carry ids, never pixels: inputs and outputs live in blob storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    request_id: str = ""


class EnhancePhotoTask(TaskPayload):
    """A photo's time limits scale with its size (contracts.photo_cost); None: the
    worker's defaults."""

    soft_time_limit: int | None = None
    time_limit: int | None = None


def send_options(task_name: str, payload: dict) -> dict:
    """The Celery options of a task message, the same from every sender (gateway, batch
    feeder, reaper): its queue, the request id header, and the time limits the payload
    carries (Celery's prefork pool applies a message's own limits over the defaults)."""
    opts: dict = {"queue": queue_for(task_name), "headers": {"kadr_request_id": payload.get("request_id", "")}}
    if payload.get("soft_time_limit"):
        opts["soft_time_limit"] = payload["soft_time_limit"]
    if payload.get("time_limit"):
        opts["time_limit"] = payload["time_limit"]
    return opts


class SegmentVideoTask(TaskPayload):
    """Segment every frame; ``raw_result_id`` is the result set (no smoothing) it fills in."""

    raw_result_id: str


class StabilizeTask(TaskPayload):
    pass


class CameraEventTask(TaskPayload):
    """One accepted camera event; ``job_id`` is the event record (kind ``camera_event``)."""

    camera_id: str
