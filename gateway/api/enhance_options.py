"""GET /api/v1/enhance/options: the photo options with this server's defaults and limits,
so a client (the web UI's Photos page) builds its form before the first upload and needs
no copy of them."""

from __future__ import annotations

import re
from typing import Any, get_args

from flask import Response, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel, Field

from gateway.api.enhance import EnhanceForm
from gateway.api.operation_ids import named_for
from gateway.context import Kadr, kadr
from gateway.responses import ErrorBody
from services.contracts import photo_cost, schemas
from services.contracts.schemas import BatchCreate, EnhanceParams, Quality, VariantSpec
from services.media import images

bp = APIBlueprint(
    "enhance_options",
    __name__,
    url_prefix="/api/v1",
    abp_tags=[Tag(name="enhance")],
    abp_security=[{"bearer": []}],
    operation_id_callback=named_for("enhance"),
)

QUALITY_DESCRIPTIONS = {
    "fast": "faces only, background resized",
    "medium": "faces + general background model",
    "high": "faces + RealESRGAN x2plus (slowest)",
}
# The sizes a form offers, within schemas.TILE_RANGE (0: the upsampler's default).
TILE_CHOICES = (0, 256, 384, 512)
FLAG_DESCRIPTIONS = {"only_center_face": "restore only the face nearest the centre"}


class QualityChoice(BaseModel):
    value: Quality
    description: str


class RangeOption(BaseModel):
    default: int | float
    minimum: int | float
    maximum: int | float
    description: str = ""


class UpscaleOption(BaseModel):
    default: int | None = Field(
        default=None,
        description="null: left out, each photo gets the largest scale up to "
        "automatic_max whose output fits max_output_pixels",
    )
    choices: list[int]
    automatic_max: int
    description: str = ""


class TileOption(BaseModel):
    default: int
    choices: list[int] = Field(..., description="the sizes a form offers (0: the upsampler's default)")
    minimum: int
    maximum: int
    description: str = ""


class FlagOption(BaseModel):
    default: bool
    description: str = ""


class PhotoFormats(BaseModel):
    input: list[str] = Field(..., description="formats an upload may be in")
    output: list[str] = Field(..., description="formats a result can be asked in (?format=)")


class VariantRules(BaseModel):
    max_count: int
    name_pattern: str
    name_max_length: int


class PhotoLimits(BaseModel):
    max_upload_bytes: int = Field(..., description="one photo")
    max_image_pixels: int = Field(..., description="one photo")
    max_output_pixels: int = Field(..., description="one result: input pixels × upscale²")
    max_batch_files: int = Field(..., description="files in one request")
    max_request_bytes: int = Field(..., description="one request, all its files")
    max_batch_items: int = Field(..., description="items in one batch: photos × variants")


class EnhanceCatalog(BaseModel):
    """The photo options with this server's defaults and limits, so a client needs no copy."""

    qualities: list[QualityChoice]
    default_quality: str = Field(..., description="what an omitted quality becomes")
    upscale: UpscaleOption
    weight: RangeOption
    max_faces: RangeOption
    tile: TileOption
    flags: dict[str, FlagOption] = Field(..., description="on/off options: only_center_face, has_aligned, prescale")
    formats: PhotoFormats
    variants: VariantRules
    limits: PhotoLimits


def enhance_catalog(k: Kadr) -> dict[str, Any]:
    s = k.settings
    props = EnhanceParams.model_json_schema()["properties"]
    weight, faces, tile = props["weight"], props["max_faces"], props["tile"]
    name = VariantSpec.model_json_schema()["properties"]["name"]["pattern"]
    body = EnhanceCatalog(
        qualities=[QualityChoice(value=q, description=QUALITY_DESCRIPTIONS[q]) for q in get_args(Quality)],
        default_quality=s.enhance_default_quality,
        upscale=UpscaleOption(
            choices=list(photo_cost.UPSCALES),
            automatic_max=photo_cost.AUTO_UPSCALE_MAX,
            description=EnhanceForm.model_fields["upscale"].description or "",
        ),
        weight=RangeOption(
            default=weight["default"],
            minimum=weight["minimum"],
            maximum=weight["maximum"],
            description=weight["description"],
        ),
        max_faces=RangeOption(
            default=s.enhance_default_max_faces,
            minimum=faces["minimum"],
            maximum=faces["maximum"],
            description=faces["description"],
        ),
        tile=TileOption(
            default=tile["default"],
            choices=list(TILE_CHOICES),
            minimum=schemas.TILE_RANGE[0],
            maximum=schemas.TILE_RANGE[1],
            description=tile["description"],
        ),
        flags={
            f: FlagOption(
                default=props[f]["default"], description=props[f].get("description") or FLAG_DESCRIPTIONS.get(f, "")
            )
            for f in ("only_center_face", "has_aligned", "prescale")
        },
        formats=PhotoFormats(input=list(images.FORMAT_MIME), output=list(images.OUTPUT_FORMATS)),
        variants=VariantRules(
            max_count=BatchCreate.model_json_schema()["properties"]["variants"]["maxItems"],
            name_pattern=name,
            name_max_length=int(re.findall(r"\{1,(\d+)\}", name)[0]),
        ),
        limits=PhotoLimits(
            max_upload_bytes=min(s.max_upload_bytes, s.max_request_bytes),
            max_image_pixels=s.max_image_pixels,
            max_output_pixels=s.max_output_pixels,
            max_batch_files=s.max_batch_files,
            max_request_bytes=s.max_request_bytes,
            max_batch_items=s.max_batch_items,
        ),
    )
    return body.model_dump()


@bp.get(
    "/enhance/options",
    summary="Photo options with this server's defaults and limits",
    responses={200: EnhanceCatalog, 401: ErrorBody, 403: ErrorBody},
)
def options() -> Response:
    return jsonify(enhance_catalog(kadr()))
