"""Typed job records: decoded once by the store with every declared field, shown through
the declared response models, and documented field by field in the OpenAPI document."""

from __future__ import annotations

import typing

import pytest

from gateway.api.views import job_view, result_set_view, video_view
from services.contracts.records import Job
from services.store.jobs import JobStore


@pytest.fixture()
def store(redis_client):
    return JobStore(redis_client, ttl_seconds=3600)


def test_every_field_a_job_declares_is_in_a_fresh_record(store):
    job = store.create(kind="enhance", owner="k1", params={"upscale": 2}, input={"name": "a.jpg"})
    required = {name for name, _ in typing.get_type_hints(Job).items()} - Job.__optional_keys__
    got = store.get(job["id"])
    assert required <= set(got), required - set(got)
    assert required <= set(job), required - set(job)


def test_a_record_written_before_a_field_existed_reads_with_its_default(store, redis_client):
    # As an older release wrote it: no parent, callback, estimate or batch fields, empty progress.
    redis_client.hset(
        store.job_key("old"),
        mapping={
            "id": "old",
            "kind": "enhance",
            "owner": "k1",
            "state": "queued",
            "progress": "",
            "created_at": "1.5",
            "updated_at": "1.5",
            "params": '{"upscale": 2}',
        },
    )
    job = store.get("old")
    assert job["progress"] == 0.0 and job["deliveries"] == 0
    assert (job["batch_id"], job["parent_id"], job["worker"], job["callback_url"]) == ("", "", "", "")
    assert job["result"] is None and job["error"] is None and job["estimate"] is None
    assert job["params"] == {"upscale": 2} and job["created_at"] == 1.5
    assert job_view(job)["progress"] == 0.0  # and the view takes it as is


def _video(store):
    video = store.create(
        kind="segment",
        owner="k1",
        params={"model": "m", "target_class": "person"},
        input={
            "blob": "videos/v/input.mp4",
            "truth_blob": "videos/v/truth.mp4",
            "name": "a.mp4",
            "container": "mp4",
            "codec": "h264",
            "width": 64,
            "height": 48,
            "fps": 25.0,
            "duration_s": 1.0,
            "frames": 25,
            "size_bytes": 1000,
            "truth_frames": 25,
        },
    )
    rs = store.create(
        kind="stabilize",
        owner="k1",
        parent_id=video["id"],
        params={"video_id": video["id"], "method": "ema", "params": {"alpha": 0.5}},
    )
    return video, rs


def _stabilized(store, rs_id, **result):
    """A result set ended as the stabilize worker ends it."""
    store.transition(
        rs_id,
        "succeeded",
        allowed_from=("queued",),
        result={
            "frames": 25,
            "method": "ema",
            "params": {"alpha": 0.5},
            "summary": {"instability": {"mean": 0.1}},
            "raw_summary": {},
            "improvement_pct": {"instability": 50.0, "warped_instability": None},
            "timings": {"stabilize_seconds": 0.5},
            **result,
        },
    )


def test_video_view_is_the_declared_model_without_storage_keys(store):
    video, rs = _video(store)
    store.transition(
        video["id"],
        "succeeded",
        allowed_from=("queued",),
        result={
            "frames": 25,
            "width": 64,
            "height": 48,
            "fps": 25.0,
            "has_truth": True,
            "model": "m",
            "target_class": "person",
            "timings": {"segment_seconds": 1.0},
        },
    )
    _stabilized(store, rs["id"])
    view = video_view(store.get(video["id"]), store.children(video["id"]))
    assert not [k for k in view["input"] if k.endswith("blob")] and view["input"]["truth_frames"] == 25
    assert view["result"]["has_truth"] is True and view["result"]["timings"] == {"segment_seconds": 1.0}
    [shown] = view["results"]
    assert shown["improvement_pct"] == {"instability": 50.0, "warped_instability": None}
    assert shown["params"] == {"alpha": 0.5} and shown["method"] == "ema"
    assert shown["callback"] is None and view["links"]["self"] == f"/api/v1/videos/{video['id']}"


def test_a_result_set_not_yet_run_and_a_newer_workers_extra_field(store):
    video, rs = _video(store)
    assert result_set_view(store.get(rs["id"]))["summary"] is None
    # A field a later worker adds is kept, not dropped by the declared model.
    store.transition(
        rs["id"],
        "failed",
        allowed_from=("queued",),
        error={"code": "not_segmented", "message": "no", "hint": "later field"},
    )
    assert result_set_view(store.get(rs["id"]))["error"]["hint"] == "later field"


def test_a_photo_job_view_hides_the_blob_and_keeps_every_result_field(store):
    job = store.create(
        kind="enhance",
        owner="k1",
        params={"upscale": 2},
        input={
            "blob": "photos/p/input.jpg",
            "name": "a.jpg",
            "format": "jpeg",
            "width": 10,
            "height": 8,
            "bytes": 99,
            "sha256": "ab",
        },
        estimate={"seconds": 1.0, "soft_time_limit_seconds": 60, "time_limit_seconds": 90},
    )
    result = {
        "blob": "photos/p/result.jpg",
        "format": "jpeg",
        "width": 20,
        "height": 16,
        "bytes": 300,
        "faces_found": 1,
        "faces_restored": 1,
        "faces_failed": 0,
        "tile_used": None,
        "detect_scale": 1.0,
        "upscale": 2,
        "cache_hit": False,
        "timings": {"total_seconds": 2.5},
        "memory": {"peak_mib": 10.0},
    }
    store.transition(job["id"], "succeeded", allowed_from=("queued",), result=result)
    view = job_view(store.get(job["id"]))
    assert "blob" not in view["input"] and "blob" not in view["result"]
    assert view["result"] == {k: v for k, v in result.items() if k != "blob"}
    assert view["estimate"]["time_limit_seconds"] == 90


def test_openapi_documents_the_fields_of_results_errors_and_inputs():
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    spec = create_app(GatewaySettings(redis_url="redis://127.0.0.1:1/0")).test_client().get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]

    def props(name):
        return set(schemas[name]["properties"])

    assert {"faces_found", "faces_restored", "tile_used", "timings"} <= props("EnhanceOutput")
    assert "blob" not in props("EnhanceOutput") and "blob" not in props("PhotoInfo")
    assert {"frames", "fps", "has_truth", "target_class"} <= props("SegmentResult")
    assert {"instability", "warped_instability"} <= props("Improvement")
    assert set(schemas["JobError"]["required"]) == {"code", "message"}
    assert {"container", "codec", "duration_s"} <= props("VideoInfo")
    assert "blob" not in props("VideoInfo")
    assert {"raw", "stable", "improvement_pct"} <= props("MetricsDocument")
    assert set(schemas["ReportRow"]["properties"]) >= {"instability", "warped_consistency", "lag_frames"}


def test_the_photo_list_holds_photos_only(store):
    photo = store.create(kind="enhance", owner="k1", params={}, input={"name": "a.jpg"})
    _video(store)  # a video and its result set
    store.create(kind="camera_event", owner="k1", params={"camera": "c1"})
    assert [j["id"] for j in store.list_owned("k1")] == [photo["id"]]
    assert len(store.list_videos("k1")[0]) == 1


def test_a_video_and_a_result_set_read_by_job_id_are_shown_in_their_own_types(store):
    # GET /jobs/{id} answers for any kind the key may read: videos and result sets too.
    video, rs = _video(store)
    _stabilized(store, rs["id"], improvement_pct={"instability": 10.0, "warped_instability": 5.0})
    shown = job_view(store.get(rs["id"]))
    assert shown["result"]["improvement_pct"]["instability"] == 10.0 and shown["input"] is None
    shown = job_view(store.get(video["id"]))
    assert shown["input"]["codec"] == "h264" and not [k for k in shown["input"] if k.endswith("blob")]
