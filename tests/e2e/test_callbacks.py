"""Completion callbacks end to end: a receiver on 127.0.0.1 (allowlisted for this stack)
gets exactly one signed POST per end state of a photo, a batch and a video with its
result sets, across a janitor restart while the receiver is down; private destinations
are refused at create; the delivery state shows on the job."""

from __future__ import annotations

import json

import pytest
import requests

from services.contracts import redis_keys
from services.contracts.camera_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from testbed.photos import flat_png
from testbed.stack import start_ops, wait_for
from testbed.synthetic_video import make_video, write_video
from tests.e2e.conftest import create_key, running_stack
from tests.fixtures.http_receiver import Receiver

pytestmark = pytest.mark.slow
FAST = {"quality": "fast", "upscale": "1", "max_faces": "1"}


@pytest.fixture(scope="module")
def hooks(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("callbacks")
    with running_stack(
        redis_server,
        models_dir,
        base,
        services=("enhance", "segment"),
        KADR_CALLBACK_ALLOW_NETWORKS='["127.0.0.0/8"]',
        KADR_CALLBACK_BACKOFF_SECONDS="0.3",
        KADR_MAX_VIDEO_FRAMES="30",
    ) as s:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'hooks')}"
        s["api"] = api
        s["janitor"] = lambda: start_ops("janitor", s["env"], base / "logs")[0]
        s["secret"] = api.get(f"{s['url']}/api/v1/callbacks/secret").json()["secret"]
        yield s


def _signed_by(s, headers, body) -> bool:
    return headers[SIGNATURE_HEADER] == signature(s["secret"], headers[TIMESTAMP_HEADER], body)


def _docs(receiver, **match):
    return [json.loads(b) for h, b in receiver.posts if all(json.loads(b).get(k) == v for k, v in match.items())]


def test_a_photo_is_announced_once_signed_across_a_janitor_restart(hooks):
    s, api, url = hooks, hooks["api"], hooks["url"]
    receiver = Receiver(204, fail_first=2)  # down for the first two attempts
    janitor = s["janitor"]()
    try:
        r = api.post(
            f"{url}/api/v1/enhance",
            files={"file": ("p.png", flat_png(seed=71))},
            data={**FAST, "callback_url": receiver.url},
        )
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        assert r.json()["callback"] == {"url": receiver.url, "state": "waiting"}
        wait_for(lambda: len(receiver.posts) >= 1, 120, "the first attempt")
        janitor.stop()  # the deliverer dies between attempts; the outbox keeps the rest
        janitor = s["janitor"]()
        job = wait_for(
            lambda: (j := api.get(f"{url}/api/v1/jobs/{jid}").json())["callback"]["state"] == "delivered" and j,
            60,
            "the delivery",
        )
        assert job["callback"]["attempts"] == 3 and job["callback"]["status"] == 204
        assert receiver.answers == [503, 503, 204]
        for headers, body in receiver.posts:
            assert _signed_by(s, headers, body)
        doc = json.loads(receiver.posts[-1][1])
        assert doc["type"] == "job.ended" and doc["id"] == jid and doc["state"] == "succeeded"
        assert doc["links"]["result"] == f"/api/v1/jobs/{jid}/result"
        # Nothing left in the outbox: nothing more can be sent after the one success.
        assert s["redis"].zcard(redis_keys.OUTBOX_DUE) == 0 and len(receiver.posts) == 3
    finally:
        janitor.stop()
        receiver.close()


def test_a_batch_and_a_video_with_its_result_sets_each_once(hooks):
    s, api, url = hooks, hooks["api"], hooks["url"]
    receiver = Receiver(204)
    janitor = s["janitor"]()
    try:
        b = api.post(
            f"{url}/api/v1/batches",
            json={"params": {"quality": "fast", "upscale": 1, "max_faces": 1}, "callback_url": receiver.url},
        ).json()
        api.post(
            f"{url}/api/v1/batches/{b['id']}/items",
            files=[("files", (f"{i}.png", flat_png(seed=80 + i))) for i in range(3)],
        ).raise_for_status()
        api.post(f"{url}/api/v1/batches/{b['id']}/close").raise_for_status()
        video = make_video(8, 96, 128, speed=3.0, seed=9)
        path = write_video(video.frames, s["base"] / "cb.mp4")
        with open(path, "rb") as f:
            r = api.post(
                f"{url}/api/v1/videos",
                files={"file": ("cb.mp4", f)},
                data={"target_class": "person", "processing_size": "128", "callback_url": receiver.url},
            )
        assert r.status_code == 202, r.text
        vid, raw = r.json()["id"], r.json()["results"][0]["id"]
        wait_for(
            lambda: (
                _docs(receiver, type="batch.ended")
                and _docs(receiver, type="video.ended")
                and _docs(receiver, type="result_set.ended")
            ),
            180,
            "three callbacks",
        )
        r = api.post(f"{url}/api/v1/videos/{vid}/stabilize", json={"method": "exponential"})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        wait_for(lambda: _docs(receiver, id=rid), 120, "the new result set's callback")
        wait_for(lambda: s["redis"].zcard(redis_keys.OUTBOX_DUE) == 0, 30, "an empty outbox")  # nothing more to come
        batch_docs = _docs(receiver, type="batch.ended")
        assert len(batch_docs) == 1 and batch_docs[0]["state"] == "succeeded"
        assert batch_docs[0]["counts"]["succeeded"] == 3
        assert [d["id"] for d in _docs(receiver, type="video.ended")] == [vid]
        assert sorted(d["id"] for d in _docs(receiver, type="result_set.ended")) == sorted([raw, rid])
        assert len(receiver.posts) == 4 and all(_signed_by(s, h, body) for h, body in receiver.posts)
        assert api.get(f"{url}/api/v1/batches/{b['id']}").json()["callback"]["state"] == "delivered"
        v = api.get(f"{url}/api/v1/videos/{vid}").json()
        assert v["callback"]["state"] == "delivered"
        assert {x["callback"]["state"] for x in v["results"]} == {"delivered"}
    finally:
        janitor.stop()
        receiver.close()


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/x", "gopher://127.0.0.1/"],
)
def test_private_or_odd_callbacks_are_refused_at_create(hooks, target):
    api, url = hooks["api"], hooks["url"]
    before = api.get(f"{url}/api/v1/jobs").json()["jobs"]
    r = api.post(
        f"{url}/api/v1/enhance", files={"file": ("p.png", flat_png(seed=5))}, data={**FAST, "callback_url": target}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("callback_forbidden", "invalid_callback_url")
    assert r.json()["error"]["details"]["field"] == "callback_url"
    r = api.post(f"{url}/api/v1/batches", json={"params": {}, "callback_url": target})
    assert r.status_code == 400, r.text
    assert api.get(f"{url}/api/v1/jobs").json()["jobs"] == before  # nothing was created
