"""Settings of the enhance worker: a pool process's, a photo's limits, and how models run here."""

from __future__ import annotations

from pydantic import Field

from services.contracts.settings import PhotoSettings
from services.runtime.settings import PoolSettings


class EnhanceSettings(PoolSettings, PhotoSettings):
    # A finished photo's result is reused for the same input and options this long.
    result_cache_ttl_seconds: int = 24 * 3600
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tile_pad: int = Field(10, ge=0, le=64, multiple_of=2)  # even: x2plus takes even-sided tiles
    # Largest background tile; 0: 256 on the CPU (larger ones are no faster there and
    # fragment the heap: 320 px tiles peak 3x higher), 1024 on CUDA. The memory budget
    # may choose smaller ones.
    max_tile: int = Field(0, ge=0)
    # On CUDA out-of-memory the tile is halved per retry down to this size.
    tile_floor: int = Field(64, ge=16)
    # CUDA: the share of the device's free memory one photo's tiles may take.
    device_memory_fraction: float = Field(0.7, gt=0, le=0.95)
    # The face detector's copy of a photo, at most (it runs on a smaller copy when the
    # memory budget says so); faces below ~16 px in that copy are not found.
    detect_max_pixels: int = Field(2_000_000, ge=65_536)
    # Models warmed up when a worker process starts; the rest load on first use.
    warm_models: list[str] = ["gfpgan", "realesr_general_x4v3"]
    torch_threads: int = 0  # 0: leave torch's default
