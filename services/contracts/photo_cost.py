"""What a photo will cost, decided where it is accepted and kept to where it runs.

The gateway answers at upload whether the output fits (``max_output_pixels``, the
output format's own limits) and picks the scale when none is asked; it writes the
job's time estimate and the time limits its task message carries. The estimate comes
from the rates the enhance workers measure on every photo they finish
(:mod:`services.store.task_stats`); before any is measured, from the reference numbers
below (this project's 2-core CPU machine, bench/results/real_photos.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.contracts import records
from services.media.writers import MAX_SIDE, WHOLE_IMAGE_BYTES_PER_PIXEL

AUTO_UPSCALE_MAX = 2  # an omitted upscale means the largest up to this that fits
UPSCALES = (1, 2, 3, 4)

# Seconds per megapixel of *input* of each quality's background pass, per face, and per
# megapixel of output for decode, paste and encode: CPU, fp32, 2 cores.
REFERENCE_INPUT_MP_SECONDS = {"fast": 0.05, "medium": 11.0, "high": 49.0}
REFERENCE_OUTPUT_MP_SECONDS = 0.2
NATIVE_SCALE = {"fast": 1, "medium": 4, "high": 2}  # each quality's background network
REFERENCE_FACE_SECONDS = 4.0
FIXED_SECONDS = 1.0  # reading, decoding and storing, whatever the size


def rate_key(quality: str, upscale: int, prescale: bool = False) -> str:
    """The rate field of one way of running a photo's background (prescaled photos run a
    quarter of the network's work: they must not lower the others' estimates; ``fast``
    has no network, so prescale changes nothing there)."""
    return f"{quality}:x{upscale}" + (":prescale" if prescale and quality != "fast" else "")


def output_format(input_format: str) -> str:
    """Results come in the input's format; HEIC and AVIF (read only) give JPEG."""
    return input_format if input_format in MAX_SIDE else "jpeg"


@dataclass(frozen=True)
class OutputLimit:
    max_pixels: int
    max_side: int
    reason: str  # what sets max_pixels, for the message


def output_limit(fmt: str, *, max_output_pixels: int, memory_budget_bytes: int) -> OutputLimit:
    """The largest output a photo may ask for in ``fmt``: the operator's limit, and for a
    format whose encoder needs the whole picture (WebP) what the worker's memory allows."""
    limit = OutputLimit(max_output_pixels, MAX_SIDE[fmt], "KADR_MAX_OUTPUT_PIXELS")
    per_px = WHOLE_IMAGE_BYTES_PER_PIXEL.get(fmt)
    if per_px and memory_budget_bytes // per_px < limit.max_pixels:
        limit = OutputLimit(
            memory_budget_bytes // per_px,
            limit.max_side,
            f"the enhance worker's memory budget for {fmt.upper()} outputs",
        )
    return limit


class OutputTooLarge(Exception):
    def __init__(self, message: str, largest: int, limit: OutputLimit):
        super().__init__(message)
        self.message, self.largest, self.limit = message, largest, limit


def fits(width: int, height: int, upscale: int, limit: OutputLimit) -> bool:
    w, h = width * upscale, height * upscale
    return w * h <= limit.max_pixels and max(w, h) <= limit.max_side


def resolve_upscale(width: int, height: int, requested: int | None, limit: OutputLimit) -> int:
    """The upscale to run: ``requested`` when its output fits, the largest up to 2 that
    fits when omitted; :class:`OutputTooLarge` (naming the largest that fits) otherwise."""
    largest = max((u for u in UPSCALES if fits(width, height, u, limit)), default=0)
    if requested is None:
        if largest:
            return min(largest, AUTO_UPSCALE_MAX)
        requested = 1
    if fits(width, height, requested, limit):
        return requested
    w, h = width * requested, height * requested
    what = (
        f"{w}x{h} = {w * h:,} pixels, over the limit of {limit.max_pixels:,} ({limit.reason})"
        if w * h > limit.max_pixels
        else f"{w}x{h}, over {limit.max_side} pixels a side"
    )
    hint = (
        f"the largest upscale that fits is {largest}"
        if largest
        else "even upscale 1 does not fit: send a smaller photo"
    )
    raise OutputTooLarge(f"a {width}x{height} photo at upscale {requested} would be {what}; {hint}", largest, limit)


@dataclass(frozen=True)
class Estimate:
    seconds: float  # expected run time
    worst_seconds: float  # with every allowed face restored: what the time limit covers
    soft_time_limit: int
    time_limit: int

    def view(self) -> records.Estimate:
        return {
            "seconds": round(self.seconds, 1),
            "soft_time_limit_seconds": self.soft_time_limit,
            "time_limit_seconds": self.time_limit,
        }


def estimate(
    width: int,
    height: int,
    params: dict[str, Any],
    rates: dict[str, Any],
    *,
    factor: float,
    floor_soft: int,
    floor_hard: int,
    cap: int,
) -> Estimate:
    """Seconds for a photo (input ``width`` x ``height``, resolved ``params``) from the
    fleet's measured ``rates`` (see task_stats.photo_rates), and the soft/hard limits:
    ``factor`` times the worst case, at least the floors, at most ``cap`` (+ the grace
    between the floors for the hard one)."""
    quality, upscale = params.get("quality", "medium"), int(params.get("upscale") or 1)
    if params.get("has_aligned"):
        in_mp, out_mp = 512 * 512 / 1e6, 512 * 512 / 1e6
    else:
        in_mp, out_mp = width * height / 1e6, width * height * upscale * upscale / 1e6
    prescale = bool(params.get("prescale"))
    per_out = rates.get(rate_key(quality, upscale, prescale))
    if per_out is None:
        # A prescaled photo's network reads (upscale/native)^2 of its pixels: x4v3 4, x2plus 2
        # (fast has no network: native 1, no shrink).
        shrink = min(1.0, (upscale / NATIVE_SCALE[quality]) ** 2) if prescale else 1.0
        per_out = REFERENCE_INPUT_MP_SECONDS[quality] * in_mp * shrink / out_mp + REFERENCE_OUTPUT_MP_SECONDS
    face = rates.get("face", REFERENCE_FACE_SECONDS)
    max_faces = 1 if params.get("has_aligned") else int(params.get("max_faces") or 0)
    expected_faces = min(max_faces, rates.get("faces_per_photo", 1.0))
    base = FIXED_SECONDS + per_out * out_mp
    seconds = base + face * expected_faces
    worst = base + face * max_faces
    grace = max(0, floor_hard - floor_soft)
    soft = int(min(cap, max(floor_soft, factor * worst)))
    return Estimate(seconds, worst, soft, soft + grace)
