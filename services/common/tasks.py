"""Task names, queues, routes and wire payloads: the one place they are declared.

The gateway sends tasks by name (``send_task``) so it never imports a worker package;
the worker registers its functions under the same names. Names are ``<service>.<verb>``
and each service consumes the queue named after it.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

ENHANCE_QUEUE = "enhance"
ENHANCE_PHOTO = "enhance.photo"

QUEUES: tuple[str, ...] = (ENHANCE_QUEUE,)

TASK_ROUTES: dict[str, dict[str, str]] = {
    ENHANCE_PHOTO: {"queue": ENHANCE_QUEUE},
}


def queue_for(task_name: str) -> str:
    return TASK_ROUTES[task_name]["queue"]


class TaskPayload(BaseModel):
    """Tasks carry ids, never pixels: inputs and outputs live in blob storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    request_id: str = ""


class EnhancePhotoTask(TaskPayload):
    pass
