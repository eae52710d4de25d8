"""API and task-parameter models shared by the gateway and the workers.

Ranges are declared once here; a value outside one is answered 400 with a message that
names the allowed range, both in the gateway and (defensively) in the worker.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Quality = Literal["fast", "medium", "high"]
JobState = Literal["pending", "queued", "running", "succeeded", "failed", "skipped", "canceled"]
OutputFormat = Literal["jpeg", "png", "webp", "bmp", "tiff"]
TILE_RANGE = (256, 512)  # a background tile asked for explicitly (0: the upsampler's default)


class EnhanceParams(BaseModel):
    """What a user may ask of one photo. ``fast``: faces only, background resized with
    Lanczos; ``medium``: realesr-general-x4v3 background; ``high``: RealESRGAN x2plus, tiled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality: Quality = "medium"
    upscale: int = Field(2, ge=1, le=4, description="output scale, 1–4")
    weight: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False,
                          description="GFPGAN blend weight, 0–1 (0 keeps more of the input)")
    tile: int = Field(0, description="background tile size: 0 (the upsampler's default) or 256–512")
    only_center_face: bool = False
    has_aligned: bool = Field(False, description="input is already an aligned 512×512 face")
    max_faces: int = Field(20, ge=0, le=100,
                           description="faces restored per image, 0–100 (0: no face work, background only)")
    prescale: bool = Field(False, description="medium/high: run the background network on the photo shrunk so "
                           "its own scale lands on the asked upscale (x4v3 on half size for upscale 2): about 4x "
                           "less work; detail finer than the shrunk photo holds is not recovered")

    @field_validator("tile")
    @classmethod
    def _tile(cls, v: int) -> int:
        if v != 0 and not TILE_RANGE[0] <= v <= TILE_RANGE[1]:
            raise ValueError(f"tile must be 0 or between {TILE_RANGE[0]} and {TILE_RANGE[1]}")
        return v


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str = ""
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobView(BaseModel):
    id: str
    kind: str
    state: JobState
    progress: float
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    params: dict[str, Any] = {}
    input: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    batch_id: str | None = None
    estimate: dict[str, Any] | None = Field(None, description="photos: expected seconds and the time limits "
                                            "its run has (soft_time_limit_seconds, time_limit_seconds)")
    callback: dict[str, Any] | None = Field(None, description="the completion callback: url, state "
                                            "(pending | delivered | failed), attempts, status or error")
    links: dict[str, str] = {}


class BatchItemView(BaseModel):
    id: str
    name: str
    variant: str = "default"
    state: JobState
    progress: float
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
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
    variants: list[dict[str, Any]] = []
    running: list[dict[str, Any]] = Field([], description="items being worked on: id and progress 0–1")
    items: list[BatchItemView] = []
    items_offset: int = 0
    callback: dict[str, Any] | None = None
    links: dict[str, str] = {}


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="folder name in the archive")
    params: dict[str, Any] = {}


class BatchCreate(BaseModel):
    """``params`` apply to every photo; each variant's params override them (one output
    per photo and variant, exported side by side)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["enhance"] = "enhance"
    name: str = Field("", max_length=200)
    params: dict[str, Any] = {}
    variants: list[VariantSpec] = Field(default_factory=list, max_length=8,
                                        description="0–8 variants; none means one output per photo")
    ttl_seconds: int | None = Field(None, ge=60, le=90 * 24 * 3600,
                                    description="how long the batch and its files are kept, 60 s–90 days")
    callback_url: str | None = Field(None, max_length=2048,
                                     description="told once, by a signed POST, when the batch ends")


# ---- response documents (the OpenAPI spec; Schemathesis checks answers against them) ----

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


class ResultSetView(BaseModel):
    """A video's result set: the raw masks or one stabilization method's."""
    id: str
    method: str
    params: dict[str, Any] = {}
    state: JobState
    progress: float
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    improvement_pct: dict[str, Any] | float | None = None
    timings: dict[str, Any] | None = None
    callback: dict[str, Any] | None = None


class VideoView(JobView):
    """A video is a job of kind ``segment`` with its result sets."""
    input: dict[str, Any] = {}
    results: list[ResultSetView]


class SegmentCatalog(BaseModel):
    classes: list[str]
    models: dict[str, Any] | list[Any]
    default_model: str
    methods: dict[str, Any]
    upload: dict[str, Any]
    limits: dict[str, Any]


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
    uploads: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
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
    return {"description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


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


class VideosPage(BaseModel):
    videos: list[VideoView]
    total: int
    offset: int
    limit: int


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
    return {"description": description,
            "content": {"text/event-stream": {"schema": {"type": "object", "description": "each event's data"}}}}
