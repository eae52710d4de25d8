"""What a photo runs with, settled at upload: its options over the server's defaults,
its upscale resolved against the output limits, its time estimate and task limits.
Single photos, one-request batches and items added to a batch share these."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateway.context import Kadr
from gateway.errors import ApiError, validation_message
from services.contracts import photo_cost
from services.contracts.photo_cost import Estimate
from services.contracts.schemas import EnhanceParams
from services.media import images
from services.store import task_stats


def enhance_params(k: Kadr, raw: dict[str, Any]) -> dict[str, Any]:
    """Photo options over the server's defaults, validated (400 naming the range).
    An option left out, or sent empty (None), takes the default; max_faces 0 is a choice.
    ``upscale`` left out stays None: each photo gets the largest that fits (plan_photo)."""
    merged = {
        "quality": k.settings.enhance_default_quality,
        "max_faces": k.settings.enhance_default_max_faces,
        **{key: v for key, v in raw.items() if v is not None},
    }
    try:
        params = EnhanceParams(**merged).model_dump()
    except ValidationError as e:
        msg, details = validation_message(e, EnhanceParams)
        raise ApiError(400, "invalid_parameters", msg, details=details)
    if merged.get("upscale") is None:
        params["upscale"] = None
    return params


def plan_photo(
    k: Kadr, params: dict[str, Any], info: images.ImageInfo, rates: dict[str, float] | None = None
) -> tuple[dict[str, Any], Estimate]:
    """The params one photo runs with (its upscale resolved against the output limits:
    413 ``output_too_large`` naming the largest upscale that fits) and its estimate."""
    s = k.settings
    limit = photo_cost.output_limit(
        photo_cost.output_format(info.format),
        max_output_pixels=s.max_output_pixels,
        memory_budget_bytes=s.enhance_memory_budget_bytes,
    )
    try:
        upscale = (
            1
            if params.get("has_aligned")
            else photo_cost.resolve_upscale(info.width, info.height, params.get("upscale"), limit)
        )
    except photo_cost.OutputTooLarge as e:
        raise ApiError(
            413,
            "output_too_large",
            e.message,
            details={
                "largest_upscale": e.largest,
                "max_output_pixels": e.limit.max_pixels,
                "max_side": e.limit.max_side,
                "width": info.width,
                "height": info.height,
            },
        )
    params = {**params, "upscale": upscale if params.get("upscale") is None else params["upscale"]}
    est = photo_cost.estimate(
        info.width,
        info.height,
        params,
        task_stats.photo_rates(k.redis) if rates is None else rates,
        factor=s.photo_time_limit_factor,
        floor_soft=s.task_soft_time_limit_seconds,
        floor_hard=s.task_time_limit_seconds,
        cap=s.photo_time_limit_cap_seconds,
    )
    return params, est


def item_plan(params: dict[str, Any], est: Estimate) -> dict[str, Any]:
    """What BatchStore.add_photo writes for one item: its params, estimate and limits."""
    return {
        "params": params,
        "estimate": est.view(),
        "task": {"soft_time_limit": est.soft_time_limit, "time_limit": est.time_limit},
    }
