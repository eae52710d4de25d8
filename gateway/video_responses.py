"""What the video routes answer: a video with its result sets, their metrics documents,
the side-by-side report and the segmentation catalog. Shared parts (errors, callbacks,
the fields every job view has) are in ``gateway/responses.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from typing_extensions import TypedDict

from gateway.responses import CallbackView, RecordView
from services.contracts.records import (
    Improvement,
    JobError,
    JobState,
    MetricsDocument,
    SegmentResult,
    VideoInfo,
    open_record,
)


class ResultSetView(BaseModel):
    """A video's result set: the raw masks or one stabilization method's."""

    id: str
    method: str
    params: dict[str, Any] = {}
    state: JobState
    progress: float
    error: JobError | None = None
    summary: dict[str, Any] | None = Field(None, description="per-metric mean, p95 and max over the frames")
    improvement_pct: Improvement | None = None
    timings: dict[str, float] | None = None
    callback: CallbackView | None = None


class VideoView(RecordView):
    """A video is a job of kind ``segment`` with its result sets."""

    input: VideoInfo
    result: SegmentResult | None = None
    results: list[ResultSetView]


class MetricsView(RootModel[MetricsDocument]):
    """A result set's metrics document, served as the worker wrote it."""


@open_record
class ReportRow(TypedDict):
    """One result set in a video's report (gateway/video_report.py: COLUMNS)."""

    result_id: str
    method: str | None
    params: dict[str, Any]
    state: JobState
    frames: int | None
    instability: float | None
    warped_consistency: float | None
    iou_truth: float | None
    dice: float | None
    lag_frames: float | None
    improvement_instability_pct: float | None
    improvement_warped_pct: float | None


class VideoReport(BaseModel):
    """Every result set of a video side by side (``format=csv``: the rows as CSV)."""

    # flask-openapi3 adds this to the response's content next to the JSON schema.
    model_config = ConfigDict(openapi_extra={"content": {"text/csv": {"schema": {"type": "string"}}}})  # type: ignore[typeddict-unknown-key]

    video_id: str
    state: JobState
    frames: int | None
    has_truth: bool
    metrics: dict[str, str] = Field(description="each column's meaning")
    result_sets: list[ReportRow]


class SegmentCatalog(BaseModel):
    classes: list[str]
    models: dict[str, Any] | list[Any]
    default_model: str
    methods: dict[str, Any]
    upload: dict[str, Any]
    limits: dict[str, Any]


class VideosPage(BaseModel):
    videos: list[VideoView]
    total: int
    offset: int
    limit: int
