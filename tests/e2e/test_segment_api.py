"""Video segmentation end to end through nginx: upload → segment → stabilize twice →
frames, metrics, overlay video, delete. Real segment worker, generated LR-ASPP weights."""

from __future__ import annotations

import csv
import io
import zipfile

import av
import numpy as np
import pytest
import requests
from PIL import Image

from testbed.stack import wait_for
from testbed.synthetic_video import make_video, write_video
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
N_FRAMES = 24


@pytest.fixture(scope="module")
def seg(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("seg")
    with running_stack(redis_server, models_dir, base, services=("segment",), KADR_MAX_VIDEO_FRAMES="30") as s:
        s["key"] = create_key(s["env"], "seg")
        s["session"] = requests.Session()
        s["session"].headers["Authorization"] = f"Bearer {s['key']}"
        video = make_video(N_FRAMES, 96, 128, speed=3.0, seed=4)
        s["video_path"] = write_video(video.frames, base / "clip.mp4")
        truth = np.repeat(video.masks[..., None].astype(np.uint8) * 255, 3, axis=3)
        s["truth_path"] = write_video(truth, base / "truth.mp4")
        yield s


def _err(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.json()
    return resp.json()["error"]


def _wait_video(s, vid, n_results):
    def done():
        v = s["session"].get(f"{s['url']}/api/v1/videos/{vid}").json()
        ended = v["state"] in ("succeeded", "failed") and all(
            r["state"] in ("succeeded", "failed") for r in v["results"]
        )
        return v if ended and len(v["results"]) == n_results else None

    return wait_for(done, 300, f"video {vid}", interval=0.3)


def test_classes_and_methods_are_listed(seg):
    body = seg["session"].get(f"{seg['url']}/api/v1/segment/classes").json()
    assert "person" in body["classes"] and "__background__" not in body["classes"]
    assert len(body["classes"]) == 20 and "deeplabv3_resnet101" in body["models"]
    assert set(body["methods"]) >= {
        "moving_average",
        "median",
        "exponential",
        "confidence_gated",
        "hysteresis",
        "flow_ema",
    }
    assert body["methods"]["moving_average"]["window"]["minimum"] == 3
    # What an upload form needs before the first upload: this server's defaults and limits.
    size = body["upload"]["processing_size"]
    assert (size["default"], size["minimum"], size["maximum"]) == (520, 128, 1024)
    assert body["limits"]["max_frames"] == 30 and body["limits"]["max_bytes"] > 0


def test_upload_segment_stabilize_frames_metrics_overlay_delete(seg):
    s, url = seg["session"], seg["url"]
    with open(seg["video_path"], "rb") as f, open(seg["truth_path"], "rb") as t:
        resp = s.post(
            f"{url}/api/v1/videos",
            files={"file": ("clip.avi", f), "truth": ("truth.mp4", t)},
            data={"target_class": "person", "model": "deeplabv3_mobilenet_v3_large", "processing_size": "128"},
        )
    assert resp.status_code == 202, resp.text
    vid = resp.json()["id"]
    assert resp.json()["input"]["container"] == "mp4"  # probed, not taken from the ".avi" name
    video = _wait_video(seg, vid, 1)
    assert video["state"] == "succeeded", video["error"]
    assert video["result"]["frames"] == N_FRAMES and video["result"]["has_truth"] is True
    raw = video["results"][0]
    assert raw["method"] == "none" and raw["state"] == "succeeded", raw

    # Out-of-range parameters name the range; nothing is queued for them.
    err = _err(
        s.post(f"{url}/api/v1/videos/{vid}/stabilize", json={"method": "moving_average", "params": {"window": 4}}),
        400,
        "invalid_parameters",
    )
    assert "3–9" in err["message"]
    _err(
        s.post(f"{url}/api/v1/videos/{vid}/stabilize", json={"method": "blur", "params": {}}), 400, "invalid_parameters"
    )

    ids = []
    for method, params in (("moving_average", {"window": 5}), ("flow_ema", {"alpha": 0.5})):
        r = s.post(f"{url}/api/v1/videos/{vid}/stabilize", json={"method": method, "params": params})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    video = _wait_video(seg, vid, 3)
    by_id = {r["id"]: r for r in video["results"]}
    for rid in ids:
        assert by_id[rid]["state"] == "succeeded", by_id[rid]
        assert 0.0 <= by_id[rid]["summary"]["iou"]["mean"] <= 1.0
    ma = ids[0]

    # Frames of every kind, at the processing size.
    for kind, ctype in (
        ("original", "image/jpeg"),
        ("raw", "image/png"),
        ("stable", "image/png"),
        ("overlay", "image/jpeg"),
    ):
        r = s.get(f"{url}/api/v1/videos/{vid}/frames/3", params={"kind": kind, "result": ma})
        assert r.status_code == 200 and r.headers["Content-Type"] == ctype, (kind, r.text[:200])
        assert Image.open(io.BytesIO(r.content)).size == (128, 96)
    png = s.get(f"{url}/api/v1/videos/{vid}/frames/0", params={"kind": "original", "format": "png"})
    assert png.content[:4] == b"\x89PNG"
    err = _err(s.get(f"{url}/api/v1/videos/{vid}/frames/{N_FRAMES}"), 404, "not_found")
    assert f"0–{N_FRAMES - 1}" in err["message"]

    # Metrics: per-frame series between consecutive frames, summaries, ground truth and lag.
    m = s.get(f"{url}/api/v1/videos/{vid}/metrics", params={"result": ma}).json()
    assert m["method"] == "moving_average" and m["frames"] == N_FRAMES
    for part in ("raw", "stable"):
        assert len(m[part]["series"]["iou"]) == N_FRAMES - 1
        assert len(m[part]["series"]["iou_truth"]) == N_FRAMES
        assert set(m[part]["summary"]["instability"]) >= {"mean", "p5", "p50", "p95"}
        assert isinstance(m[part]["summary"]["lag_frames"], int)
    assert "instability" in m["improvement_pct"]

    # The overlay video: H.264, every frame, and seekable (Range → 206) as browsers need.
    ov = s.get(f"{url}/api/v1/videos/{vid}/overlay.mp4", params={"result": ma})
    assert ov.status_code == 200 and ov.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(ov.content)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == N_FRAMES
    part = s.get(f"{url}/api/v1/videos/{vid}/overlay.mp4", params={"result": ma}, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100

    # The study as a report: every result set side by side, the metrics endpoint's numbers.
    rep = s.get(f"{url}/api/v1/videos/{vid}/report").json()
    assert rep["has_truth"] is True and rep["frames"] == N_FRAMES
    assert [r["result_id"] for r in rep["result_sets"]] == [raw["id"], *ids]
    for r in rep["result_sets"]:
        m = s.get(f"{url}/api/v1/videos/{vid}/metrics", params={"result": r["result_id"]}).json()
        st = m["stable"]["summary"]
        assert (r["instability"], r["warped_consistency"], r["iou_truth"], r["dice"], r["lag_frames"]) == (
            st["instability"]["mean"],
            st["warped_iou"]["mean"],
            st["iou_truth"]["mean"],
            st["dice"]["mean"],
            st["lag_frames"],
        )
        assert r["improvement_instability_pct"] == m["improvement_pct"]["instability"]
    table = list(csv.DictReader(io.StringIO(s.get(f"{url}/api/v1/videos/{vid}/report", params={"format": "csv"}).text)))
    assert [t["method"] for t in table] == ["none", "moving_average", "flow_ema"]
    assert float(table[1]["instability"]) == rep["result_sets"][1]["instability"]
    frames = list(
        csv.DictReader(io.StringIO(s.get(f"{url}/api/v1/videos/{vid}/frames.csv", params={"result": ma}).text))
    )
    m_ma = s.get(f"{url}/api/v1/videos/{vid}/metrics", params={"result": ma}).json()
    assert len(frames) == N_FRAMES and frames[0]["stable_iou"] == ""  # pairs start at the second frame
    assert float(frames[1]["stable_iou"]) == m_ma["stable"]["series"]["iou"][0]
    assert float(frames[-1]["raw_instability"]) == m_ma["raw"]["series"]["instability"][-1]
    assert float(frames[0]["stable_iou_truth"]) == m_ma["stable"]["series"]["iou_truth"][0]
    # Masks out: a ZIP of PNGs and a lossless matte, both equal to the stored masks.
    z = s.get(f"{url}/api/v1/videos/{vid}/masks.zip", params={"result": ma})
    assert z.status_code == 200 and z.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = zf.namelist()
        assert names == [f"frame_{i:06d}.png" for i in range(N_FRAMES)]
        stored = np.asarray(
            Image.open(
                io.BytesIO(
                    s.get(f"{url}/api/v1/videos/{vid}/frames/5", params={"kind": "stable", "result": ma}).content
                )
            )
        )
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(zf.read("frame_000005.png")))), stored)
    mov = s.get(f"{url}/api/v1/videos/{vid}/matte.mov", params={"result": ma})
    assert mov.status_code == 200 and mov.headers["Content-Type"] == "video/quicktime"
    with av.open(io.BytesIO(mov.content)) as c:
        assert c.streams.video[0].codec_context.name == "qtrle"
        decoded = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(decoded) == N_FRAMES and np.array_equal(decoded[5], stored)  # lossless
    listed = s.get(f"{url}/api/v1/videos").json()
    assert listed["total"] >= 1 and listed["videos"][0]["id"] == vid and len(listed["videos"][0]["results"]) == 3

    # Another key sees nothing; delete removes the records and every file.
    other = create_key(seg["env"], "other")
    assert requests.get(f"{url}/api/v1/videos", headers={"Authorization": f"Bearer {other}"}).json()["total"] == 0
    _err(requests.get(f"{url}/api/v1/videos/{vid}", headers={"Authorization": f"Bearer {other}"}), 404, "not_found")
    d = s.delete(f"{url}/api/v1/videos/{vid}")
    assert d.status_code == 200 and d.json()["files_removed"] > N_FRAMES * 4
    _err(s.get(f"{url}/api/v1/videos/{vid}"), 404, "not_found")
    assert not (seg["base"] / "blobs" / "videos" / vid).exists()


def test_bad_videos_are_refused_clearly(seg, tmp_path):
    s, url = seg["session"], seg["url"]
    _err(
        s.post(f"{url}/api/v1/videos", files={"file": ("movie.mp4", b"just some text, not a video")}),
        415,
        "unsupported_format",
    )
    long = write_video(make_video(40, 32, 32, seed=1).frames, tmp_path / "long.mp4")
    with open(long, "rb") as f:
        err = _err(s.post(f"{url}/api/v1/videos", files={"file": ("long.mp4", f)}), 413, "too_many_frames")
    assert "at most 30" in err["message"]
    with open(seg["video_path"], "rb") as f:
        err = _err(
            s.post(f"{url}/api/v1/videos", files={"file": ("a.mp4", f)}, data={"target_class": "unicorn"}),
            400,
            "invalid_parameters",
        )
    assert "person" in err["message"]
