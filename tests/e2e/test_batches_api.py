"""Batches at scale through nginx → gunicorn → Redis → a real enhance worker: streaming
items and archives in, dedupe, live SSE, pause/resume/cancel/retry, manifests and the
ZIP while running."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import threading
import zipfile

import pytest
import requests

from testbed.photos import flat_png
from testbed.stack import wait_for
from tests.e2e.conftest import sse_events

pytestmark = pytest.mark.slow
FAST = {"quality": "fast", "upscale": 1, "max_faces": 1}


def _batch(api, **spec) -> dict:
    r = api.post(f"{api.base}/api/v1/batches", json={"params": FAST, **spec})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/api/v1/batches/{r.json()['id']}"
    return r.json()


def _add(api, bid, files: list[tuple[str, bytes]], status=202) -> dict:
    r = api.post(f"{api.base}/api/v1/batches/{bid}/items", files=[("files", f) for f in files])
    assert r.status_code == status, r.text
    return r.json()


def _get(api, bid, **params) -> dict:
    return api.get(f"{api.base}/api/v1/batches/{bid}", params={"limit": 0, **params}).json()


def _wait_ended(api, bid, timeout=240) -> dict:
    return wait_for(
        lambda: (b := _get(api, bid))["state"] in ("succeeded", "partial", "failed", "canceled") and b,
        timeout,
        f"batch {bid} to end",
        interval=0.2,
    )


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_stream_in_files_and_archives_follow_live_and_export(api):
    b = _batch(
        api, name="holiday", variants=[{"name": "fast", "params": {}}, {"name": "big", "params": {"upscale": 2}}]
    )
    bid = b["id"]
    assert b["state"] == "open" and b["open"] and [v["name"] for v in b["variants"]] == ["fast", "big"]

    events: list[tuple[str, dict]] = []

    def listen():
        sse_events(api, f"{api.base}/api/v1/batches/{bid}/events", lambda name, data: name == "end", into=events)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()

    # Parallel requests, a retried upload, a duplicate under another name, a bad file.
    photos = {f"p{i}.png": flat_png(seed=100 + i) for i in range(4)}
    with_dup = [("p0.png", photos["p0.png"]), ("p1.png", photos["p1.png"])]
    threads = [
        threading.Thread(target=_add, args=(api, bid, with_dup)),
        threading.Thread(target=_add, args=(api, bid, [("p2.png", photos["p2.png"])])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = _add(
        api, bid, [("p0.png", photos["p0.png"]), ("copy.png", photos["p1.png"]), ("notes.jpg", b"not a photo")]
    )
    assert [a["existing"] for a in again["accepted"]] == [True, True, False, False]
    assert [a["state"] for a in again["accepted"][2:]] == ["skipped", "skipped"]
    assert again["rejected"][0]["name"] == "notes.jpg"
    # Each answer names the request's file it came from (clients sending several match by it).
    assert [a["file"] for a in again["accepted"]] == [0, 0, 1, 1] and again["rejected"][0]["file"] == 2

    # A ZIP with a photo, a traversal name, a nested archive, a bomb-like entry and macOS junk.
    bomb = b"\0" * 900_000  # under the stack's 1 MB upload limit, ~1000:1 compressed
    archive = _zip(
        {
            "trip/p3.png": photos["p3.png"],
            "../../evil.png": photos["p3.png"],
            "inner.zip": _zip({"x.png": photos["p3.png"]}),
            "zeros.png": bomb,
            "__MACOSX/._p3.png": b"junk",
            ".DS_Store": b"junk",
        }
    )
    out = _add(api, bid, [("photos.zip", archive)])
    assert [a["name"] for a in out["accepted"]] == ["trip/p3.png", "trip/p3.png"]
    codes = {r["code"] for r in out["rejected"]}
    assert codes == {"unsafe_path", "nested_archive", "compression_ratio"}, out["rejected"]
    assert out["ignored"] == 2
    assert {a["file"] for a in out["accepted"] + out["rejected"]} == {0}  # all from the one archive

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as tf:
        info = tarfile.TarInfo("link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    r = api.post(f"{api.base}/api/v1/batches/{bid}/items", files=[("files", ("t.tgz", tar.getvalue()))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_photo_accepted"
    assert r.json()["error"]["details"][0]["code"] == "not_a_file"

    # Manifest and ZIP while the batch is still open.
    assert api.post(f"{api.base}/api/v1/batches/{bid}/close").json()["open"] is False
    _add(api, bid, [("late.png", flat_png(seed=999))], status=409)
    end = _wait_ended(api, bid)
    assert end["state"] == "succeeded" and end["progress"] == 1.0 and end["percent"] == 100.0
    assert end["total"] == 10 and end["photos"] == 5  # 4 photos + 1 duplicate, 2 variants each
    assert end["counts"]["succeeded"] == 8 and end["counts"]["skipped"] == 2
    listener.join(30)
    names = [n for n, _ in events]
    assert names[0] == "progress" and names[-1] == "end" and names.count("item") >= 8
    assert events[-1][1]["progress"] == 1.0
    percents = [d["progress"] for n, d in events if n == "progress"]
    assert percents == sorted(percents)  # never goes back

    rows = list(csv.DictReader(io.StringIO(api.get(f"{api.base}/api/v1/batches/{bid}/manifest.csv").text)))
    assert len(rows) == 10 and {r["variant"] for r in rows} == {"fast", "big"}
    dup = next(r for r in rows if r["name"] == "copy.png" and r["variant"] == "big")
    orig = next(r for r in rows if r["name"] == "p1.png" and r["variant"] == "big")
    assert dup["state"] == "skipped" and dup["duplicate_of"] == orig["item_id"]
    assert dup["output_url"] == orig["output_url"] == f"/api/v1/jobs/{orig['item_id']}/result"
    assert int(orig["output_width"]) == 2 * int(orig["input_width"])
    lines = api.get(f"{api.base}/api/v1/batches/{bid}/manifest.jsonl").text.splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["name"] == rows[0]["name"]
    z = zipfile.ZipFile(io.BytesIO(api.get(f"{api.base}/api/v1/batches/{bid}/archive").content))
    assert sorted(z.namelist()) == sorted(
        f"{v}/{n}" for v in ("fast", "big") for n in ("p0.png", "p1.png", "p2.png", "copy.png", "trip/p3.png")
    )
    assert z.testzip() is None


def test_pause_resume_cancel_and_retry(api, stack):
    b = _batch(api)
    bid = b["id"]
    api.post(f"{api.base}/api/v1/batches/{bid}/pause")
    _add(api, bid, [(f"q{i}.png", flat_png(seed=200 + i)) for i in range(3)])
    got = _get(api, bid)
    assert got["state"] == "paused" and got["counts"]["pending"] == 3  # nothing handed out
    api.post(f"{api.base}/api/v1/batches/{bid}/resume")
    api.post(f"{api.base}/api/v1/batches/{bid}/close")
    assert _wait_ended(api, bid)["counts"]["succeeded"] == 3

    # A failed item (its input file removed under it) is retried alone.
    c = _batch(api)
    cid = c["id"]
    api.post(f"{api.base}/api/v1/batches/{cid}/pause")
    acc = _add(api, cid, [("r0.png", flat_png(seed=300)), ("r1.png", flat_png(seed=301))])["accepted"]
    blobs = stack["base"] / "blobs"
    victim = next(blobs.glob(f"batches/{cid}/inputs/{acc[1]['sha256']}*"))
    data = victim.read_bytes()
    victim.unlink()
    api.post(f"{api.base}/api/v1/batches/{cid}/close")
    api.post(f"{api.base}/api/v1/batches/{cid}/resume")
    end = _wait_ended(api, cid)
    assert end["state"] == "partial" and end["counts"] == {**end["counts"], "succeeded": 1, "failed": 1}
    victim.write_bytes(data)
    retried = api.post(f"{api.base}/api/v1/batches/{cid}/retry").json()
    assert retried["counts"]["failed"] == 0
    end = _wait_ended(api, cid)
    assert end["state"] == "succeeded" and end["counts"]["succeeded"] == 2
    items = api.get(f"{api.base}/api/v1/batches/{cid}/items").json()["items"]
    assert [i["state"] for i in items] == ["succeeded", "succeeded"]
    # The "before" of the web UI's before/after view, after a reload: the upload as it came.
    before = api.get(f"{api.base}{items[0]['links']['input']}")
    assert before.status_code == 200 and before.headers["Content-Type"] == "image/png"
    assert before.content == flat_png(seed=300)
    assert api.get(f"{api.base}{items[0]['links']['input']}", params={"format": "jpeg"}).content[:2] == b"\xff\xd8"

    d = _batch(api)
    api.post(f"{api.base}/api/v1/batches/{d['id']}/pause")
    _add(api, d["id"], [(f"c{i}.png", flat_png(seed=400 + i)) for i in range(3)])
    got = api.post(f"{api.base}/api/v1/batches/{d['id']}/cancel").json()
    assert got["state"] == "canceled" and got["counts"]["canceled"] == 3
    assert api.post(f"{api.base}/api/v1/batches/{d['id']}/retry").status_code == 409
    assert requests.delete(f"{api.base}/api/v1/batches/{d['id']}", headers=api.headers).json()["deleted"]
    assert api.get(f"{api.base}/api/v1/batches/{d['id']}").status_code == 404


def test_batch_limits_and_isolation(api, keys):
    r = api.post(f"{api.base}/api/v1/batches", json={"params": {"upscale": 9}})
    assert r.status_code == 400 and "1–4" in r.json()["error"]["message"]
    r = api.post(f"{api.base}/api/v1/batches", json={"variants": [{"name": "a"}, {"name": "A"}]})
    assert r.status_code == 400
    b = _batch(api)
    other = requests.get(f"{api.base}/api/v1/batches/{b['id']}", headers={"Authorization": f"Bearer {keys[1]}"})
    assert other.status_code == 404
    r = api.post(f"{api.base}/api/v1/batches/{b['id']}/items", files=[("files", ("a.png", flat_png()))] * 6)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_files"  # the stack allows 5


def test_a_retried_create_with_an_idempotency_key_gets_the_same_batch(api, keys):
    spec = {"params": FAST, "name": "retried"}
    first = api.post(f"{api.base}/api/v1/batches", json=spec, headers={"Idempotency-Key": "create-1"})
    assert first.status_code == 201, first.text
    again = api.post(f"{api.base}/api/v1/batches", json=spec, headers={"Idempotency-Key": "create-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.headers["Location"] == first.headers["Location"]
    # The same key with another request is a client bug, said as such.
    other = api.post(
        f"{api.base}/api/v1/batches", json={**spec, "name": "else"}, headers={"Idempotency-Key": "create-1"}
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # Keys belong to their API key; without one every create is a new batch.
    theirs = requests.post(
        f"{api.base}/api/v1/batches",
        json=spec,
        headers={"Authorization": f"Bearer {keys[1]}", "Idempotency-Key": "create-1"},
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    ids = {api.post(f"{api.base}/api/v1/batches", json=spec).json()["id"] for _ in range(2)}
    assert len(ids) == 2 and first.json()["id"] not in ids
    # A refused create leaves the key free for the corrected request.
    bad = api.post(
        f"{api.base}/api/v1/batches", json={"params": {"upscale": 9}}, headers={"Idempotency-Key": "create-2"}
    )
    assert bad.status_code == 400
    good = api.post(f"{api.base}/api/v1/batches", json={"params": FAST}, headers={"Idempotency-Key": "create-2"})
    assert good.status_code == 201, good.text
