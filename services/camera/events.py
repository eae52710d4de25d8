"""One camera event, from frames to result: pure (numpy in, dicts and arrays out).

Given the frames a ring returned for the event's offsets (2, 3, 4 s before it by
default) and the camera's own uploaded images, pick the sharpest ring frame (variance
of the Laplacian over the plate box, else the vehicle box, else the whole frame) as
the "snow photo", and locate plates on it and on the uploads. The task stores what
``analyse`` returns; nothing here touches Redis, Celery or storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.camera.plates import crop
from services.camera.ring_buffer import Lookup
from services.camera.sharpness import Box, clip_box, laplacian_variance
from services.contracts.records import EventParams

FindPlates = Callable[..., list[Box]]


@dataclass
class EventOutcome:
    result: dict[str, Any]
    images: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> BGR image to store


def event_roi(params: EventParams) -> Box | None:
    """The box sharpness is measured on: the plate's when given, else the vehicle's."""
    box = params.get("plate_box") or params.get("vehicle_box")
    if not box:
        return None
    x, y, w, h = (int(v) for v in box)  # the gateway lets only [x, y, w, h] in
    return x, y, w, h


def _score(frame: np.ndarray, roi: Box | None) -> tuple[float, bool]:
    """Score and whether the ROI was used (a box outside the frame falls back to it all)."""
    if roi is not None and clip_box(roi, frame.shape) is not None:
        return laplacian_variance(frame, roi), True
    return laplacian_variance(frame), False


def analyse(
    params: EventParams,
    offsets: Sequence[float],
    lookups: Sequence[Lookup | None],
    uploads: dict[str, np.ndarray],
    *,
    find_plates: FindPlates,
    max_plates: int = 5,
) -> EventOutcome:
    """``lookups[i]`` is the ring's (ts, frame) nearest ``ts - offsets[i]``, or None."""
    event_ts = float(params["ts"])
    roi = event_roi(params)
    images: dict[str, np.ndarray] = {}
    candidates: list[dict[str, Any]] = []
    best: int | None = None
    for i, (off, got) in enumerate(zip(offsets, lookups)):
        if got is None:
            candidates.append({"offset": off, "asked_ts": round(event_ts - off, 3), "missing": True})
            continue
        ts, frame = got
        score, used_roi = _score(frame, roi)
        kind = f"candidate_{i}"
        images[kind] = frame
        candidates.append(
            {
                "offset": off,
                "asked_ts": round(event_ts - off, 3),
                "ts": round(ts, 3),
                "score": round(score, 3),
                "roi": used_roi,
                "image": kind,
                "height": int(frame.shape[0]),
                "width": int(frame.shape[1]),
            }
        )
        if best is None or score > candidates[best]["score"]:
            best = i
    snow: dict[str, Any] | None = None
    if best is not None:
        c = candidates[best]
        images["snow"] = images[c["image"]]
        snow = {"offset": c["offset"], "ts": c["ts"], "score": c["score"], "image": "snow", "candidate": c["image"]}
    elif uploads:
        # No buffered frame (no source, or the event is older than the buffer): the
        # sharpest of the camera's own images stands in.
        scored = [(name, _score(img, roi)[0]) for name, img in uploads.items()]
        name, score = max(scored, key=lambda ns: ns[1])
        images["snow"] = uploads[name]
        snow = {"offset": None, "ts": None, "score": round(score, 3), "image": "snow", "upload": name}

    plates: list[dict[str, Any]] = []
    n = 0
    searched = [("snow", images["snow"])] if "snow" in images and "upload" not in (snow or {}) else []
    searched += list(uploads.items())
    for source, img in searched:
        vehicle = params.get("vehicle_box")
        roi_v = tuple(vehicle) if vehicle and clip_box(tuple(vehicle), img.shape) else None
        for box in find_plates(img, roi=roi_v, max_plates=max_plates):
            if n >= max_plates:
                break
            kind = f"plate_{n}"
            images[kind] = crop(img, box)
            plates.append({"image": kind, "source": source, "box": [int(v) for v in box]})
            n += 1
    result = {
        "snow": snow,
        "candidates": candidates,
        "plates": plates,
        "roi": list(roi) if roi else None,
        "frames_found": sum(1 for g in lookups if g is not None),
    }
    return EventOutcome(result=result, images=images)
