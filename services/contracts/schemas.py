"""Request and task-parameter models shared by the gateway and the workers.

Ranges are declared once here; a value outside one is answered 400 with a message that
names the allowed range, both in the gateway and (defensively) in the worker. What the
gateway answers is in ``gateway/responses.py``; what the job store holds in ``records.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Quality = Literal["fast", "medium", "high"]
OutputFormat = Literal["jpeg", "png", "webp", "bmp", "tiff"]
TILE_RANGE = (256, 512)  # a background tile asked for explicitly (0: the upsampler's default)


class EnhanceParams(BaseModel):
    """What a user may ask of one photo. ``fast``: faces only, background resized with
    Lanczos; ``medium``: realesr-general-x4v3 background; ``high``: RealESRGAN x2plus, tiled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality: Quality = "medium"
    upscale: int = Field(2, ge=1, le=4, description="output scale, 1–4")
    weight: float = Field(
        0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="GFPGAN blend weight, 0–1 (0 keeps more of the input)"
    )
    tile: int = Field(0, description="background tile size: 0 (the upsampler's default) or 256–512")
    only_center_face: bool = False
    has_aligned: bool = Field(False, description="input is already an aligned 512×512 face")
    max_faces: int = Field(
        20, ge=0, le=100, description="faces restored per image, 0–100 (0: no face work, background only)"
    )
    prescale: bool = Field(
        False,
        description="medium/high: run the background network on the photo shrunk so "
        "its own scale lands on the asked upscale (x4v3 on half size for upscale 2): about 4x "
        "less work; detail finer than the shrunk photo holds is not recovered",
    )

    @field_validator("tile")
    @classmethod
    def _tile(cls, v: int) -> int:
        if v != 0 and not TILE_RANGE[0] <= v <= TILE_RANGE[1]:
            raise ValueError(f"tile must be 0 or between {TILE_RANGE[0]} and {TILE_RANGE[1]}")
        return v


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
    variants: list[VariantSpec] = Field(
        default_factory=list, max_length=8, description="0–8 variants; none means one output per photo"
    )
    ttl_seconds: int | None = Field(
        None, ge=60, le=90 * 24 * 3600, description="how long the batch and its files are kept, 60 s–90 days"
    )
    callback_url: str | None = Field(
        None, max_length=2048, description="told once, by a signed POST, when the batch ends"
    )


# ---- response documents (the OpenAPI spec; Schemathesis checks answers against them) ----
