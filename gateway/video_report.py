"""A video's result sets side by side (the defliker study of the origin, as a report), and
one result set's per-frame series as CSV. Pure: takes the metrics documents the segment
worker wrote (``metrics.json`` per result set, the same one ``/videos/{id}/metrics``
serves), returns rows; the numbers are those documents' own, never recomputed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from services.contracts.records import MetricsDocument, SegmentJob, StabilizeJob

# (column, where in a metrics document, what it means); the stabilized masks' summary.
METRICS = [
    (
        "instability",
        ("stable", "summary", "instability", "mean"),
        "1 - IoU of consecutive masks, mean (lower: steadier)",
    ),
    (
        "warped_consistency",
        ("stable", "summary", "warped_iou", "mean"),
        "IoU of each mask with the previous one warped by optical flow, mean (higher: steadier where things move)",
    ),
    ("iou_truth", ("stable", "summary", "iou_truth", "mean"), "IoU with the ground-truth masks, mean"),
    ("dice", ("stable", "summary", "dice", "mean"), "Dice of consecutive masks, mean"),
    ("lag_frames", ("stable", "summary", "lag_frames"), "frames the masks trail the truth by"),
    ("improvement_instability_pct", ("improvement_pct", "instability"), "instability removed vs the raw masks, %"),
    (
        "improvement_warped_pct",
        ("improvement_pct", "warped_instability"),
        "flow-warped instability removed vs the raw masks, %",
    ),
]
COLUMNS = ["result_id", "method", "params", "state", "frames"] + [m[0] for m in METRICS]
FRAME_SERIES = ["iou", "dice", "instability", "warped_iou", "iou_truth"]


def _dig(doc: object, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def row(result_set: StabilizeJob, metrics: MetricsDocument | None) -> dict[str, Any]:
    params = result_set.get("params") or {}
    out = {
        "result_id": result_set["id"],
        "method": params.get("method"),
        "params": params.get("params") or {},
        "state": result_set["state"],
        "frames": metrics.get("frames") if metrics else None,
    }
    for name, path, _ in METRICS:
        out[name] = _dig(metrics, path) if metrics else None
    return out


def report(video: SegmentJob, rows: list[dict[str, Any]]) -> dict[str, Any]:
    result: Mapping[str, Any] = video.get("result") or {}
    return {
        "video_id": video["id"],
        "state": video["state"],
        "frames": result.get("frames"),
        "has_truth": bool(result.get("has_truth")),
        "metrics": {name: meaning for name, _, meaning in METRICS},
        "result_sets": rows,
    }


def report_csv(rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({**r, "params": json.dumps(r["params"], sort_keys=True)})
    return buf.getvalue()


def frames_csv(metrics: Mapping[str, Any]) -> Iterator[str]:
    """One row per frame: the raw and the stabilized masks' series side by side. A series
    over consecutive frames (IoU, Dice, instability, warped IoU) has a value from the
    second frame on: the one comparing that frame with the frame before it."""
    frames = int(metrics.get("frames") or 0)
    series = {
        f"{side}_{name}": (metrics.get(side) or {}).get("series", {}).get(name)
        for side in ("raw", "stable")
        for name in FRAME_SERIES
    }
    series = {k: v for k, v in series.items() if v is not None}
    offset = {k: frames - len(v) for k, v in series.items()}  # 1 for pairs, 0 per frame
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", *series])
    yield buf.getvalue()
    for i in range(frames):
        buf.seek(0)
        buf.truncate()
        w.writerow([i, *[(v[i - offset[k]] if 0 <= i - offset[k] < len(v) else "") for k, v in series.items()]])
        yield buf.getvalue()
