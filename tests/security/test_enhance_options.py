"""GET /api/v1/enhance/options: the photo options a client builds its form from (the web
UI's Photos page), with this server's defaults and limits from its settings, behind the
same key and scope as the photo routes, and ranges the photo routes accept as given."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from services.contracts.schemas import BatchCreate, EnhanceParams, VariantSpec
from services.store.apikeys import create_key


def test_options_follow_the_servers_settings(gateway):
    client, auth, s = gateway(
        enhance_default_quality="fast",
        enhance_default_max_faces=3,
        max_batch_files=7,
        max_upload_bytes=1_000_000,
        max_output_pixels=5_000_000,
    )
    resp = client.get("/api/v1/enhance/options", headers=auth)
    assert resp.status_code == 200, resp.text
    body = resp.json
    assert [q["value"] for q in body["qualities"]] == ["fast", "medium", "high"]
    assert all(q["description"] for q in body["qualities"])
    assert body["default_quality"] == "fast"
    assert body["max_faces"] == {**body["max_faces"], "default": 3, "minimum": 0, "maximum": 100}
    assert body["upscale"]["choices"] == [1, 2, 3, 4] and body["upscale"]["default"] is None
    assert body["upscale"]["automatic_max"] == 2
    assert (body["weight"]["minimum"], body["weight"]["maximum"], body["weight"]["default"]) == (0, 1, 0.5)
    assert body["tile"]["default"] == 0 and body["tile"]["choices"][0] == 0
    assert set(body["flags"]) == {"only_center_face", "has_aligned", "prescale"}
    assert not any(f["default"] for f in body["flags"].values())
    assert {"jpeg", "png", "heic", "avif"} <= set(body["formats"]["input"])
    assert "heic" not in body["formats"]["output"] and "png" in body["formats"]["output"]
    assert body["limits"] == {
        "max_upload_bytes": 1_000_000,
        "max_image_pixels": s.max_image_pixels,
        "max_output_pixels": 5_000_000,
        "max_batch_files": 7,
        "max_request_bytes": s.max_request_bytes,
        "max_batch_items": s.max_batch_items,
    }
    assert body["variants"]["max_count"] == 8 and body["variants"]["name_max_length"] == 32


def test_every_offered_choice_is_accepted_and_the_bounds_are_the_real_ones(gateway):
    client, auth, _ = gateway()
    body = client.get("/api/v1/enhance/options", headers=auth).json
    for q in body["qualities"]:
        EnhanceParams(quality=q["value"])
    for n in body["upscale"]["choices"]:
        EnhanceParams(upscale=n)
    for t in body["tile"]["choices"]:
        EnhanceParams(tile=t)
    for field in ("weight", "max_faces", "tile"):
        lo, hi = body[field]["minimum"], body[field]["maximum"]
        EnhanceParams(**{field: lo})
        EnhanceParams(**{field: hi})
        step = 0.01 if field == "weight" else 1
        for wrong in (lo - step, hi + step):
            with pytest.raises(ValidationError):
                EnhanceParams(**{field: wrong})
    for wrong in (min(body["upscale"]["choices"]) - 1, max(body["upscale"]["choices"]) + 1):
        with pytest.raises(ValidationError):
            EnhanceParams(upscale=wrong)
    v = body["variants"]
    VariantSpec(name="a" * v["name_max_length"])
    with pytest.raises(ValidationError):
        VariantSpec(name="a" * (v["name_max_length"] + 1))
    assert re.fullmatch(v["name_pattern"], "x2_same-1")
    BatchCreate(variants=[{"name": f"v{i}"} for i in range(v["max_count"])])
    with pytest.raises(ValidationError):
        BatchCreate(variants=[{"name": f"v{i}"} for i in range(v["max_count"] + 1)])


def test_options_need_a_key_with_the_photos_scope(gateway, redis_client):
    client, _, _ = gateway()
    resp = client.get("/api/v1/enhance/options")
    assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthorized"
    video_only, _ = create_key(redis_client, "video-only", scopes=["video"])
    resp = client.get("/api/v1/enhance/options", headers={"Authorization": f"Bearer {video_only}"})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden_scope"


def test_the_openapi_document_describes_the_answer(gateway):
    client, _, _ = gateway()
    spec = client.get("/api/openapi.json").json
    op = spec["paths"]["/api/v1/enhance/options"]["get"]
    assert op["security"] == [{"bearer": []}]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {
        "qualities",
        "default_quality",
        "upscale",
        "weight",
        "max_faces",
        "tile",
        "flags",
        "formats",
        "variants",
        "limits",
    } <= set(schema["required"])
