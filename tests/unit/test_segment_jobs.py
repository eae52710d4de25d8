"""A result set's work (services/segment/jobs.stabilize) on stored frames and
probabilities, without a model: the shortest clips and the metrics document."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from services.contracts import blob_keys
from services.segment.jobs import stabilize
from services.store.blobs import LocalBlobStore


def _stored_video(blobs: LocalBlobStore, vid: str, frames: int, w: int = 32, h: int = 24) -> None:
    rng = np.random.default_rng(frames)
    for i in range(frames):
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        prob = np.zeros((h, w), np.uint8)
        prob[4:20, 4 + i : 20 + i] = 230  # a square drifting right: some flicker to measure
        blobs.put_bytes(blob_keys.video_frame(vid, i), cv2.imencode(".jpg", frame)[1].tobytes())
        blobs.put_bytes(blob_keys.video_prob(vid, i), cv2.imencode(".png", prob)[1].tobytes())
    blobs.put_bytes(
        blob_keys.video_manifest(vid),
        json.dumps(
            {
                "frames": frames,
                "width": w,
                "height": h,
                "fps": 25.0,
                "has_truth": False,
                "model": "m",
                "target_class": "person",
            }
        ).encode(),
    )


@pytest.mark.parametrize("frames", [1, 2, 6])
@pytest.mark.parametrize("method", ["none", "exponential"])
def test_a_result_set_of_the_shortest_clips_ends_with_a_json_safe_document(tmp_path, frames, method):
    blobs = LocalBlobStore(tmp_path)
    _stored_video(blobs, "v1", frames)
    job = {"id": "r1", "kind": "stabilize", "params": {"video_id": "v1", "method": method, "params": {}}}
    seen: list[float] = []
    result = stabilize(job, seen.append, blobs=blobs)  # type: ignore[arg-type]  # only the fields it reads
    assert result["frames"] == frames and result["method"] == method
    doc = json.loads(blobs.get_bytes(blob_keys.result_file("v1", "r1", "metrics.json")))
    assert doc["frames"] == frames and set(doc["improvement_pct"]) == {"instability", "warped_instability"}
    if frames == 1:  # no consecutive pair: nothing to compare, not a crash
        assert result["improvement_pct"] == {"instability": None, "warped_instability": None}
        assert doc["raw"]["summary"]["instability"]["n"] == 0
    else:
        assert doc["raw"]["summary"]["instability"]["n"] == frames - 1
    if method == "none":  # the raw set: stabilized and raw masks are the same
        assert result["improvement_pct"]["instability"] in (0.0, None)
    for i in range(frames):
        assert blobs.exists(blob_keys.result_mask("v1", "r1", i))
    assert blobs.exists(blob_keys.result_file("v1", "r1", "overlay.mp4"))
    json.dumps(result, allow_nan=False)
