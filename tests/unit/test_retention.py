"""Retention: per-kind TTLs and one budget over a real blob store and a real redis-server."""

from __future__ import annotations

import time
from types import SimpleNamespace

from services.contracts import redis_keys
from services.store.batches import BatchStore
from services.store.blobs import LocalBlobStore
from services.store.camera_events import index_event
from services.store.jobs import JobStore
from services.upkeep.batch_feed import Feeder
from services.upkeep.retention import Item, Retention, plan, usage_by_owner

DAY = 24 * 3600


def _settings(**kw):
    base = dict(
        retention_photos_seconds=DAY,
        retention_videos_seconds=DAY,
        retention_events_seconds=DAY,
        retention_orphan_grace_seconds=3600.0,
        storage_budget_bytes=0,
    )
    return SimpleNamespace(**{**base, **kw})


def _item(kind, ident, size, *, active=False, finished=None, expires=None, newest=0.0):
    return Item(kind, ident, size, 1, "k", active, finished, expires, newest)


def test_plan_ttl_orphans_after_grace_then_oldest_finished_first_whatever_the_kind():
    now = 10_000.0
    items = [
        _item("batches", "live", 500, active=True, expires=10.0),  # expired TTL but running
        _item("photos", "old", 300, finished=100.0, expires=50_000.0),
        _item("videos", "older", 300, finished=50.0, expires=50_000.0),
        _item("events", "new", 300, finished=9_000.0, expires=50_000.0),
        _item("photos", "expired", 10, finished=20.0, expires=9_999.0),
        _item("videos", "orphan", 10, newest=now - 7200),
        _item("photos", "uploading", 10, newest=now - 5),
    ]  # no record yet: inside the grace
    got = [(i.id, why) for i, why in plan(items, budget=1200, now=now, orphan_grace=3600)]
    assert got == [("expired", "ttl"), ("orphan", "record_gone"), ("older", "disk_budget")]
    assert [(i.id, why) for i, why in plan(items, budget=0, now=now, orphan_grace=3600)] == [
        ("expired", "ttl"),
        ("orphan", "record_gone"),
    ]
    # Only live work left over budget: nothing more goes.
    assert plan([_item("batches", "live", 5000, active=True, expires=9e9)], budget=100, now=now, orphan_grace=0) == []


class World:
    """One of each kind in a real Redis and a real blob store."""

    def __init__(self, r, root):
        self.jobs = JobStore(r, 30 * DAY)
        self.blobs = LocalBlobStore(root)
        self.batches = BatchStore(self.jobs)

    def finish(self, job_id, state="succeeded"):
        self.jobs.begin(job_id, max_deliveries=3, worker="w")
        self.jobs.transition(job_id, state, allowed_from=("running",))

    def photo(self, size, finish=True):
        job = self.jobs.create(kind="enhance", owner="k1", params={})
        self.blobs.put_bytes(f"jobs/{job['id']}/input", b"p" * size)
        if finish:
            self.finish(job["id"])
        return job["id"]

    def video(self, size, *, set_running=False):
        v = self.jobs.create(kind="segment", owner="k1", params={})
        self.blobs.put_bytes(f"videos/{v['id']}/input", b"v" * size)
        self.finish(v["id"])
        rs = self.jobs.create(kind="stabilize", owner="k1", params={"video_id": v["id"]}, parent_id=v["id"])
        self.blobs.put_bytes(f"videos/{v['id']}/results/{rs['id']}/overlay.mp4", b"o" * size)
        if not set_running:
            self.finish(rs["id"])
        else:
            self.jobs.begin(rs["id"], max_deliveries=3, worker="w")
        return v["id"], rs["id"]

    def event(self, size, ts, finish=True):
        ev = self.jobs.create(kind="camera_event", owner="camera:gate", params={"camera": "gate", "ts": ts})
        p = self.jobs.r.pipeline()
        index_event(p, "gate", ev["id"], ts, 30 * DAY)
        p.execute()
        self.blobs.put_bytes(f"camera/{ev['id']}/snow.jpg", b"e" * size)
        if finish:
            self.finish(ev["id"])
        else:
            self.jobs.begin(ev["id"], max_deliveries=3, worker="w")  # being written
        return ev["id"]

    def queued_video(self, size):
        v = self.jobs.create(kind="segment", owner="k1", params={})
        self.blobs.put_bytes(f"videos/{v['id']}/input", b"v" * size)
        return v["id"]

    def batch(self, size, finish=True):
        b = self.batches.create(kind="enhance", owner="k2", params={}, task="enhance.photo", ttl_seconds=DAY)
        self.batches.add_photo(b, input={"blob": "x", "name": "a.jpg", "sha256": b["id"] * 2, "bytes": size})
        self.blobs.put_bytes(f"batches/{b['id']}/inputs/photo", b"b" * size)
        self.blobs.put_bytes(f"batches/{b['id']}/inputs/.nfs0001", b"h" * 10_000)  # hidden: not counted
        if finish:
            self.batches.close(b["id"])
            Feeder(self.batches, lambda t, p: None, window=10).feed(b["id"])
            self.finish(self.batches.item_ids(b["id"])[0])
        return b["id"]

    def keys_naming(self, ident):
        return [k for k in self.jobs.r.scan_iter(count=1000) if ident in k] + [
            k for k in self.jobs.r.zrange(redis_keys.CAMERA_EVENTS, 0, -1) if k == ident
        ]


def test_each_kind_expires_on_its_ttl_live_work_never(redis_client, tmp_path):
    w = World(redis_client, tmp_path)
    photo, (video, rs), batch = w.photo(100), w.video(100), w.batch(100)
    event = w.event(100, ts=time.time() - 2 * DAY)
    busy_video, busy_set = w.video(100, set_running=True)
    open_batch = w.batch(100, finish=False)
    queued_video = w.queued_video(100)
    live_event = w.event(100, ts=time.time() - 2 * DAY, finish=False)
    ret = Retention(w.jobs, w.blobs, _settings())
    now = w.jobs.get(photo)["finished_at"]
    assert ret.sweep(now=now + 60).removed == []
    rnd = ret.sweep(now=now + DAY + 60)
    gone = {(i.kind, i.id, why) for i, why in rnd.removed}
    assert gone == {
        ("photos", photo, "ttl"),
        ("videos", video, "ttl"),
        ("batches", batch, "ttl"),
        ("events", event, "ttl"),
    }
    for ident, prefix in ((photo, "jobs"), (video, "videos"), (batch, "batches"), (event, "camera")):
        assert w.blobs.usage(f"{prefix}/{ident}").files == 0 and not w.blobs.folders(f"{prefix}/{ident}")
        assert w.keys_naming(ident) == [], ident
    assert w.keys_naming(rs) == []
    # The video whose result set runs, and the batch still open, stay whatever their age.
    assert w.jobs.get(busy_video) and w.jobs.get(busy_set) and w.batches.get(open_batch)
    assert w.jobs.get(queued_video) and w.jobs.get(live_event)
    assert w.blobs.usage(f"videos/{busy_video}").files == 2
    assert {i.id for i in rnd.items if i.active} == {busy_video, open_batch, queued_video, live_event}
    totals = rnd.totals()
    assert totals["videos"] == {"bytes": 300, "files": 3, "count": 2}
    assert totals["batches"]["bytes"] == 100  # the hidden file is not counted


def test_budget_takes_the_oldest_finished_first_across_kinds(redis_client, tmp_path):
    w = World(redis_client, tmp_path)
    first = w.photo(4000)
    second_video, _ = w.video(2000)
    third = w.batch(4000)
    running = w.photo(4000, finish=False)
    w.jobs.begin(running, max_deliveries=3, worker="w")
    ret = Retention(w.jobs, w.blobs, _settings(storage_budget_bytes=13_000))
    rnd = ret.sweep()
    assert [(i.id, why) for i, why in rnd.removed] == [(first, "disk_budget")]
    ret.s.storage_budget_bytes = 1000  # only the running photo would be left
    rnd = ret.sweep()
    assert [i.id for i, _ in rnd.removed] == [second_video, third]
    assert rnd.over_budget and w.jobs.get(running)["state"] == "running"
    assert w.blobs.usage(f"jobs/{running}").bytes == 4000


def test_orphan_folders_wait_their_grace_and_recordless_events_leave_the_index(redis_client, tmp_path):
    w = World(redis_client, tmp_path)
    w.blobs.put_bytes("jobs/abandoned/input", b"x" * 10)
    event = w.event(10, ts=time.time() - 2 * DAY)
    redis_client.delete(w.jobs.job_key(event))  # its record expired in Redis
    w.blobs.delete_prefix(f"camera/{event}")
    ret = Retention(w.jobs, w.blobs, _settings())
    rnd = ret.sweep()  # the folder is new: maybe an upload whose record is on its way
    assert [(i.id, why) for i, why in rnd.removed] == [(event, "record_gone")]
    assert redis_client.zscore(redis_keys.CAMERA_EVENTS, event) is None
    rnd = ret.sweep(now=time.time() + 3601)
    assert [(i.id, why) for i, why in rnd.removed] == [("abandoned", "record_gone")]
    assert w.blobs.folders("jobs") == []


def test_usage_per_owner_and_the_remembered_sizes_of_finished_things(redis_client, tmp_path):
    w = World(redis_client, tmp_path)
    w.photo(100)
    w.photo(50)
    w.batch(30)
    live = w.photo(7, finish=False)
    ret = Retention(w.jobs, w.blobs, _settings())
    rnd = ret.sweep()
    u = usage_by_owner(rnd)
    assert u["k1"]["photos"]["bytes"] == 157 and u["k1"]["photos"]["count"] == 3
    assert u["k1"]["photos"]["live"] == 1 and u["k1"]["photos"]["next_expiry"] is not None
    assert u["k2"]["batches"]["bytes"] == 30
    # A finished photo is not listed again; the live one is.
    calls = []
    real = w.blobs.usage
    w.blobs.usage = lambda prefix: calls.append(prefix) or real(prefix)
    ret.sweep()
    assert calls == [f"jobs/{live}"]
