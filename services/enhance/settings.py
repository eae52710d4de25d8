"""Settings of the enhance worker: the shared ones plus how models run here."""
from __future__ import annotations

from pydantic import Field

from services.common.settings import Settings


class EnhanceSettings(Settings):
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tile_pad: int = 10
    pre_pad: int = 0
    # On CUDA out-of-memory the tile is halved per retry down to this size.
    tile_floor: int = Field(64, ge=16)
    # Models warmed up when a worker process starts; the rest load on first use.
    warm_models: list[str] = ["gfpgan", "realesr_general_x4v3"]
    torch_threads: int = 0  # 0: leave torch's default
