"""Task names, queues, routes and wire payloads: the one place they are declared.

The gateway sends tasks by name (``send_task``) so it never imports a worker package;
the worker registers its functions under the same names. Names are ``<service>.<verb>``
and each service consumes the queue named after it.
"""

from __future__ import annotations

from typing import Any

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


# Priorities on kombu's Redis transport: one Redis list per step ("<queue>" for 0,
# "<queue>\x06\x16<step>" for the others), and a worker pops the lowest step first across
# its queues. What a person waits on (one photo, a video, a camera event) goes at 0;
# batch items at 9, so a single photo starts as soon as a pool process frees up, however
# many batch items wait (seed 002 asked for exactly this).
INTERACTIVE, BATCH = 0, 9
PRIORITY_STEPS: tuple[int, ...] = (INTERACTIVE, BATCH)
PRIORITY_SEP = "\x06\x16"  # kombu's default separator
# kombu's Redis transport keeps each delivered, not yet acknowledged message in this hash
# (delivery tag -> [message, exchange, routing key]) and its tags in this sorted set.
UNACKED_KEY, UNACKED_INDEX_KEY = "unacked", "unacked_index"


def queue_key(queue: str, priority: int = INTERACTIVE) -> str:
    """The Redis list kombu keeps a queue's messages of one priority step in."""
    return f"{queue}{PRIORITY_SEP}{priority}" if priority else queue


def queue_keys(queue: str) -> tuple[str, ...]:
    return tuple(queue_key(queue, p) for p in PRIORITY_STEPS)


class TaskPayload(BaseModel):
    """Tasks carry ids, never pixels: inputs and outputs live in blob storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    request_id: str = ""
    priority: int = INTERACTIVE  # the queue step its message goes to (batch items: BATCH)


class EnhancePhotoTask(TaskPayload):
    """A photo's time limits scale with its size (contracts.photo_cost); None: the
    worker's defaults."""

    soft_time_limit: int | None = None
    time_limit: int | None = None


def send_options(task_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The Celery options of a task message, the same from every sender (gateway, batch
    feeder, reaper): its queue, the request id header, and the time limits the payload
    carries (Celery's prefork pool applies a message's own limits over the defaults), and
    the priority step it carries (every resend of a batch item stays behind single work)."""
    opts: dict[str, Any] = {
        "queue": queue_for(task_name),
        "headers": {"kadr_request_id": payload.get("request_id", "")},
        "priority": payload.get("priority") or INTERACTIVE,
    }
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
