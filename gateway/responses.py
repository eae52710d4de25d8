"""What each route answers: the response models the OpenAPI document lists (Schemathesis
checks answers against them). Record parts (results, errors, inputs) are the TypedDicts of
``services/contracts/records.py``, so a field a worker writes is documented where it is
declared. Views build these from records (``gateway/api/views.py``).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from services.contracts.records import (
    EnhanceOutput,
    Estimate,
    JobError,
    JobState,
    PhotoInfo,
    RunningItem,
    SegmentResult,
    StabilizeResult,
    Variant,
    VideoInfo,
    open_record,
)


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str = ""
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


@open_record
class CallbackView(TypedDict):
    """Where a completion callback goes and how its delivery went ("waiting": its job
    has not ended; the other states and fields are the outbox's, CallbackOutcome)."""

    url: str
    state: Literal["waiting", "pending", "delivered", "failed"]
    attempts: NotRequired[int]
    last_attempt_at: NotRequired[float]
    status: NotRequired[int]
    error: NotRequired[str]
    next_attempt_at: NotRequired[float]


class RecordView(BaseModel):
    """What every job's view shows, whatever its kind."""

    id: str
    kind: str
    state: JobState
    progress: float
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    params: dict[str, Any] = {}
    error: JobError | None = None
    callback: CallbackView | None = None
    links: dict[str, str] = {}


class JobView(RecordView):
    """A job by its id: a photo's, or (with the ``video`` scope) a video's or a result set's,
    whose fuller views are under /videos."""

    input: PhotoInfo | VideoInfo | None = None
    result: EnhanceOutput | SegmentResult | StabilizeResult | None = None
    batch_id: str | None = None
    estimate: Estimate | None = Field(None, description="photos: expected seconds and the time limits its run has")


class BatchItemView(BaseModel):
    id: str
    name: str
    variant: str = "default"
    state: JobState
    progress: float
    error: JobError | None = None
    result: EnhanceOutput | None = None
    duplicate_of: str | None = None
    links: dict[str, str] = {}


class PhotoAccepted(BaseModel):
    """One variant of one photo added to a batch (``existing``: a retried upload)."""

    id: str
    name: str
    variant: str = "default"
    sha256: str
    state: JobState
    duplicate_of: str | None = None
    existing: bool = False
    file: int = Field(0, description="which of the request's files (0-based, in the order sent) it came from")


class PhotoRefused(BaseModel):
    name: str
    code: str
    message: str
    file: int = Field(0, description="which of the request's files (0-based, in the order sent) it came from")


class ItemsAdded(BaseModel):
    """``stopped``: a quota stopped the request there (what came before is in)."""

    accepted: list[PhotoAccepted]
    rejected: list[PhotoRefused]
    ignored: int
    stopped: dict[str, str] | None = None


class BatchView(BaseModel):
    id: str
    kind: str
    name: str = ""
    state: str
    open: bool = False
    paused: bool = False
    progress: float
    percent: float = 0.0
    total: int
    photos: int = 0
    counts: dict[str, int]
    throughput_per_s: float | None = None
    eta_seconds: float | None = None
    created_at: float
    closed_at: float | None = None
    params: dict[str, Any] = {}
    variants: list[Variant] = []
    running: list[RunningItem] = Field([], description="items being worked on: id and progress 0–1")
    items: list[BatchItemView] = []
    items_offset: int = 0
    callback: CallbackView | None = None
    links: dict[str, str] = {}


class JobsPage(BaseModel):
    jobs: list[JobView]
    offset: int


class BatchesPage(BaseModel):
    batches: list[BatchView]
    offset: int


class ItemsPage(BaseModel):
    items: list[BatchItemView]
    offset: int
    next_offset: int | None = None


class Deleted(BaseModel):
    id: str
    deleted: bool
    files_removed: int


class CameraEventView(BaseModel):
    id: str
    camera: str | None = None
    state: JobState
    ts: float | None = None
    received_at: float
    started_at: float | None = None
    finished_at: float | None = None
    vehicle_box: list[int] | None = None
    plate_box: list[int] | None = None
    plate: str | None = None
    extra: dict[str, Any] = {}
    offsets: list[float] | None = None
    uploads: dict[str, PhotoInfo] = {}
    result: dict[str, Any] | None = None
    error: JobError | None = None
    images: dict[str, str] = {}
    links: dict[str, str] = {}


class CameraEventsPage(BaseModel):
    events: list[CameraEventView]
    total: int
    offset: int
    limit: int


class CamerasView(BaseModel):
    cameras: list[dict[str, Any]]
    backlog: int
    max_backlog: int


def binary(media_type: str, description: str) -> dict[str, Any]:
    """A response that is a file, not JSON, as flask-openapi3 takes it."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


class OpsView(BaseModel):
    time: float
    readiness: dict[str, Any]
    queues: dict[str, Any]
    workers: list[dict[str, Any]]
    redis: dict[str, Any]
    storage: dict[str, Any] | None = None
    host: dict[str, Any]


class KindUsage(BaseModel):
    bytes: int
    files: int
    count: int
    live: int = Field(description="how many still have work queued or running (never expired)")
    next_expiry: float | None = Field(description="when the next finished one expires (Unix time)")


class CallbackSecret(BaseModel):
    secret: str
    signature_header: str
    timestamp_header: str
    scheme: str


class UsageView(BaseModel):
    as_of: float | None = Field(description="when the janitor last surveyed the store (None: not yet)")
    kinds: dict[str, KindUsage]
    total_bytes: int
    ttl_seconds: dict[str, int]
    store: dict[str, Any]


def event_stream(description: str) -> dict[str, Any]:
    """Server-Sent Events whose every ``data`` is a JSON object."""
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": {"type": "object", "description": "each event's data"}}},
    }
