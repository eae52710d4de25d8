"""The video report's rows and per-frame CSV from metrics documents as the worker writes them."""

from __future__ import annotations

import csv
import io

from gateway import video_report


def _metrics(frames=4, truth=True):
    def side(base):
        series = {
            "iou": [base, base + 0.1, base + 0.2][: frames - 1],
            "dice": [0.9] * (frames - 1),
            "instability": [1 - base] * (frames - 1),
            "warped_iou": [0.8] * (frames - 1),
        }
        summary = {k: {"mean": sum(v) / len(v)} for k, v in series.items()}
        if truth:
            series["iou_truth"] = [0.5] * frames
            summary["iou_truth"] = {"mean": 0.5}
            summary["lag_frames"] = 1
        return {"series": series, "summary": summary}

    return {
        "frames": frames,
        "raw": side(0.6),
        "stable": side(0.7),
        "improvement_pct": {"instability": 25.0, "warped_instability": 10.0},
    }


def test_a_row_carries_the_documents_own_numbers_and_a_pending_set_none():
    m = _metrics()
    rs = {"id": "r1", "state": "succeeded", "params": {"method": "median", "params": {"window": 5}}}
    r = video_report.row(rs, m)
    assert r["instability"] == m["stable"]["summary"]["instability"]["mean"]
    assert (r["iou_truth"], r["lag_frames"], r["improvement_instability_pct"]) == (0.5, 1, 25.0)
    pending = video_report.row({"id": "r2", "state": "running", "params": {"method": "none"}}, None)
    assert pending["instability"] is None and pending["frames"] is None
    table = list(csv.DictReader(io.StringIO(video_report.report_csv([r, pending]))))
    assert table[0]["params"] == '{"window": 5}' and table[1]["instability"] == ""


def test_frames_csv_aligns_pair_series_to_their_later_frame():
    rows = list(csv.reader(io.StringIO("".join(video_report.frames_csv(_metrics())))))
    head, body = rows[0], rows[1:]
    assert len(body) == 4 and body[0][0] == "0"
    iou, truth = head.index("stable_iou"), head.index("stable_iou_truth")
    assert body[0][iou] == "" and float(body[1][iou]) == 0.7 and float(body[3][iou]) == 0.7 + 0.2
    assert all(float(r[truth]) == 0.5 for r in body)
    no_truth = list(csv.reader(io.StringIO("".join(video_report.frames_csv(_metrics(truth=False))))))
    assert "stable_iou_truth" not in no_truth[0]
