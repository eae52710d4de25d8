"""Settings of the camera worker: a worker's, the cameras, and how events run."""

from __future__ import annotations

from pydantic import Field

from services.contracts.settings import CameraListSettings
from services.runtime.settings import WorkerSettings


class CameraSettings(WorkerSettings, CameraListSettings):
    ring_jpeg_quality: int = Field(90, ge=1, le=100)  # frames kept in JPEG rings
    output_jpeg_quality: int = Field(92, ge=1, le=100)  # snow photo, candidates, plate crops
    # A frame further than this from the asked time is reported missing, not used.
    lookup_tolerance_seconds: float = 1.0
    max_plates: int = Field(5, ge=0, le=20)
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    source_timeout_seconds: float = 10.0
    buffer_publish_seconds: float = 1.0
    # How long past the end of a clip's "after" part an event waits for the camera's
    # frames to arrive (a source that stalls or is down): then the clip is cut from
    # what there is, and its start and end say what it covers.
    camera_clip_wait_slack_seconds: float = Field(2.0, ge=0, le=30)
    camera_clip_crf: int = Field(23, ge=0, le=51)  # H.264 quality of clips encoded from JPEG rings
    camera_clip_encoders: int = Field(1, ge=1, le=8)  # clips encoded at once (JPEG rings); copies are not limited
