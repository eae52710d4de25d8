"""Settings of the segment worker: a pool process's, a video's limits, and how models run here."""

from __future__ import annotations

from services.contracts.settings import VideoSettings
from services.runtime.settings import PoolSettings


class SegmentSettings(PoolSettings, VideoSettings):
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Loaded when a worker process starts; the others on first use.
    warm_models: list[str] = ["lraspp_mobilenet_v3_large"]
    torch_threads: int = 0
    frame_jpeg_quality: int = 90
