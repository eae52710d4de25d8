"""Job records as the job store decodes them, and the parts each kind puts in them.

A job is one Redis hash; ``services/store/jobs.py`` decodes it once into a :class:`Job`
(JSON fields parsed, times as floats). ``Job`` is generic over its params and result, so
each kind names its own: an enhance worker reads ``EnhanceJob``, the stabilizer
``StabilizeJob``, the camera worker ``EventJob``. The store cannot know a record's kind
before reading it and returns ``AnyJob``, which fits each of them.

These are TypedDicts, not classes: records are read by the hundred on batch pages and a
dict costs nothing to build. The response models (``schemas.py``) embed the result and
params types, so the OpenAPI document lists their fields; ``open_record`` lets a record
carry fields a newer worker wrote without the gateway dropping them.

What does not belong here: request validation (``schemas.py``), how a record is shown
to clients (``gateway/api/views.py``), Redis key names (``redis_keys.py``).
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class
# creation, and string annotations would leave every key counted as required.
from typing import Any, Generic, Literal, NotRequired, TypeVar

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

JobState = Literal["pending", "queued", "running", "succeeded", "failed", "skipped", "canceled"]
P = TypeVar("P")
R = TypeVar("R")
# Validated as part of a response: keeps the fields it does not declare.
open_record = with_config(ConfigDict(extra="allow"))


@open_record
class JobError(TypedDict):
    code: str
    message: str
    details: NotRequired[Any]


@open_record
class Estimate(TypedDict):
    """A photo's expected run time and the limits its task carries (photo_cost.Estimate)."""

    seconds: float
    soft_time_limit_seconds: int
    time_limit_seconds: int


@open_record
class CallbackOutcome(TypedDict):
    """How the completion callback's delivery went (services/upkeep/delivery.py)."""

    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_attempt_at: float
    status: NotRequired[int]
    error: NotRequired[str]
    next_attempt_at: NotRequired[float]


class Job(TypedDict, Generic[P, R]):
    """One job hash, decoded. ``params`` and ``result`` are the kind's own."""

    id: str
    kind: str
    owner: str
    state: JobState
    progress: float
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    params: P
    input: Any
    result: R | None
    error: JobError | None
    batch_id: str
    request_id: str
    deliveries: int
    worker: str
    parent_id: str
    estimate: Estimate | None
    callback_url: str
    callback_subject: str
    # Written after creation: the task to resend if its worker dies (JobStore.set_task),
    # the callback's outcome, a batch item's variant and the item it duplicates.
    task: NotRequired[str]
    task_payload: NotRequired[str]
    callback: NotRequired[CallbackOutcome | None]
    variant: NotRequired[str]
    duplicate_of: NotRequired[str]
    dispatched_at: NotRequired[str]  # when the feeder handed a batch item to its queue


AnyJob = Job[Any, Any]


class Variant(TypedDict):
    name: str
    params: dict[str, Any]


class RunningItem(TypedDict):
    id: str
    progress: float


class Batch(TypedDict):
    """One batch hash as ``BatchRecords.get`` reads it: the stored fields, the item counts
    by state, and what is worked out from them (state, progress, rate)."""

    id: str
    kind: str
    owner: str
    name: str
    created_at: float
    params: dict[str, Any]
    request_id: str
    task: str  # the Celery task every item runs
    ttl_seconds: int
    callback_url: str
    variants: list[Variant]
    counts: dict[str, int]  # items by job state
    total: int
    photos: int
    bytes: int
    open: bool
    paused: bool
    canceled: bool
    closed_at: float | None
    done: int
    running: list[RunningItem]
    progress: float
    state: str  # open, queued, running, paused, canceling, canceled, succeeded, partial, failed
    # With ``rate`` (the default read): items per second over the recent ends, seconds left.
    throughput_per_s: NotRequired[float | None]
    eta_seconds: NotRequired[float | None]
    callback: NotRequired[CallbackOutcome | None]
    callback_fired: NotRequired[str]


# enhance: one photo (params are schemas.EnhanceParams, dumped)
@open_record
class PhotoInfo(TypedDict):
    """An uploaded photo as clients see it."""

    name: str
    format: str
    width: int
    height: int
    bytes: int
    sha256: str


@open_record
class PhotoInput(PhotoInfo):
    blob: str


@open_record
class EnhanceOutput(TypedDict):
    """The restored photo as clients see it (its blob key stays inside)."""

    format: str
    width: int
    height: int
    bytes: int
    faces_found: int
    faces_restored: int
    faces_failed: int
    tile_used: int | None
    detect_scale: float
    upscale: int
    cache_hit: bool
    timings: dict[str, float]
    memory: NotRequired[dict[str, Any]]


@open_record
class EnhanceResult(EnhanceOutput):
    blob: str


EnhanceJob = Job[dict[str, Any], EnhanceResult]


# segment: one video (params are schemas.SegmentParams, dumped)
@open_record
class VideoInfo(TypedDict):
    """An uploaded video as clients see it: what the probe found (media/video.VideoInfo)."""

    name: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int
    size_bytes: int
    truth_frames: NotRequired[int]


@open_record
class VideoInput(VideoInfo):
    blob: str
    truth_blob: NotRequired[str]


@open_record
class SegmentResult(TypedDict):
    """The video's manifest (also stored as a blob for the stabilizer) and its timings."""

    frames: int
    width: int
    height: int
    fps: float
    has_truth: bool
    model: str
    target_class: str
    timings: NotRequired[dict[str, float]]


SegmentJob = Job[dict[str, Any], SegmentResult]


# stabilize: one result set of a video (a child job of the segment job)
class StabilizeParams(TypedDict):
    video_id: str
    method: str
    params: dict[str, Any]


@open_record
class Improvement(TypedDict):
    """Per cent less flicker than the raw masks (None where the raw masks had none)."""

    instability: float | None
    warped_instability: float | None


@open_record
class StabilizeResult(TypedDict):
    frames: int
    method: str
    params: dict[str, Any]
    summary: dict[str, Any]
    raw_summary: dict[str, Any]
    improvement_pct: Improvement
    timings: dict[str, float]


StabilizeJob = Job[StabilizeParams, StabilizeResult]


@open_record
class SeriesReport(TypedDict):
    """Per-frame series over one set of masks, and their summaries (segment/series.py)."""

    series: dict[str, list[float]]  # iou, dice, instability, warped_iou (+ iou_truth)
    summary: dict[str, Any]  # per series: mean, p95, min, max (+ lag_frames with a truth video)


@open_record
class MetricsDocument(TypedDict):
    """A result set's ``metrics.json`` blob: what /videos/{id}/metrics serves as written."""

    result_id: str
    method: str
    params: dict[str, Any]
    frames: int
    raw: SeriesReport
    stable: SeriesReport
    improvement_pct: Improvement


# camera_event: one webhook's event
class EventParams(TypedDict):
    camera: str
    ts: float
    ts_given: bool
    vehicle_box: list[int] | None
    plate_box: list[int] | None
    plate: str | None
    extra: dict[str, Any]
    offsets: list[float]


class EventInput(TypedDict):
    images: dict[str, PhotoInput]  # images the camera sent with the event, by field name


EventJob = Job[EventParams, dict[str, Any]]
