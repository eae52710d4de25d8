"""The resume state of ``kadr enhance``: what a re-run uploads, waits for, and skips."""

from __future__ import annotations

import json
import os

import pytest

from client import entries
from client import state as st
from client.inputs import InputError, collect

SERVER = "http://kadr.example:8080"
PARAMS = {"quality": "fast", "max_faces": 1}


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fresh(tmp_path, files: dict[str, bytes]) -> tuple[st.State, dict]:
    paths = {rel: write(tmp_path / "in" / rel, data) for rel, data in files.items()}
    s = st.State(server=SERVER, params=dict(PARAMS))
    st.sync_inputs(s, {rel: st.fingerprint(p) for rel, p in paths.items()})
    return s, paths


def item(id_, state="queued", **kw):
    return {"id": id_, "name": "x", "variant": "default", "state": state, **kw}


def test_round_trip_keeps_every_field(tmp_path):
    s, _ = fresh(tmp_path, {"a.jpg": b"a", "sub/b.png": b"bb"})
    s.batch_id = "batch-1"
    entries.record_accepted(s.inputs["a.jpg"], "batch-1", item("job-a", "skipped", duplicate_of="job-z"))
    entries.mark_downloaded(s.inputs["a.jpg"], "a.jpg")
    entries.record_rejected(s.inputs["sub/b.png"], "invalid_image", "not an image")
    path = tmp_path / st.STATE_FILE
    st.save(s, path)
    back = st.load(path)
    assert back == s
    assert back.inputs["a.jpg"].duplicate_of == "job-z"
    assert back.inputs["sub/b.png"].error == "invalid_image: not an image"


def test_load_missing_is_none_and_garbage_is_a_clear_error(tmp_path):
    assert st.load(tmp_path / st.STATE_FILE) is None
    bad = write(tmp_path / st.STATE_FILE, b"{not json")
    with pytest.raises(st.StateError, match="--new-batch"):
        st.load(bad)


def test_save_is_atomic_a_failed_write_leaves_the_old_file(tmp_path):
    s, _ = fresh(tmp_path, {"a.jpg": b"a"})
    path = tmp_path / st.STATE_FILE
    st.save(s, path)
    before = path.read_bytes()
    s.params["weird"] = object()  # not JSON: the write fails half-way through
    with pytest.raises(TypeError):
        st.save(s, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", st.STATE_FILE])
    json.loads(before)


def test_save_replaces_without_leaving_temp_files(tmp_path):
    s, _ = fresh(tmp_path, {"a.jpg": b"a"})
    path = tmp_path / st.STATE_FILE
    for i in range(3):
        s.batch_id = f"b{i}"
        st.save(s, path)
    assert st.load(path).batch_id == "b2"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_fingerprint_hash_and_reuse(tmp_path):
    f = write(tmp_path / "a.jpg", b"hello")
    fp = st.fingerprint(f)
    assert fp.size == 5
    assert fp.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    # Same size and mtime: the stored hash is trusted (no re-read of big files on resume).
    fake = st.Entry(size=fp.size, mtime_ns=fp.mtime_ns, sha256="cached")
    assert st.fingerprint(f, fake).sha256 == "cached"
    write(f, b"HELLO!")
    assert st.fingerprint(f, fake).sha256 != "cached"


def test_mismatch_detects_params_and_server():
    s = st.State(server=SERVER + "/", params=dict(PARAMS))
    assert st.mismatch(s, SERVER, dict(PARAMS)) is None
    why = st.mismatch(s, SERVER, {"quality": "high", "max_faces": 1})
    assert "quality" in why and "'fast'" in why and "'high'" in why and "max_faces" not in why
    assert "upscale" in st.mismatch(s, SERVER, {**PARAMS, "upscale": 2})
    assert "http://other" in st.mismatch(s, "http://other", dict(PARAMS))


def test_plan_first_run_uploads_everything(tmp_path):
    s, _ = fresh(tmp_path, {"a.jpg": b"a", "b.jpg": b"b"})
    p = entries.plan(s, ["a.jpg", "b.jpg"], tmp_path / "out")
    assert p.upload == ["a.jpg", "b.jpg"] and not (p.done or p.watch or p.failed)


def test_plan_resume_decisions(tmp_path):
    out = tmp_path / "out"
    s, _ = fresh(
        tmp_path,
        {
            n: n.encode()
            for n in ("done.jpg", "gone.jpg", "bad.jpg", "running.jpg", "failed.jpg", "canceled.jpg", "new.jpg")
        },
    )
    e = s.inputs
    for rel in ("done.jpg", "gone.jpg", "running.jpg", "failed.jpg", "canceled.jpg"):
        entries.record_accepted(e[rel], "b1", item(f"job-{rel}"))
    write(out / "done.png", b"out")
    entries.mark_downloaded(e["done.jpg"], "done.png")
    entries.mark_downloaded(e["gone.jpg"], "gone.png")  # its output was deleted since
    entries.record_item(e["gone.jpg"], item("job-gone.jpg", "succeeded"))
    entries.record_rejected(e["bad.jpg"], "invalid_image", "cannot decode")
    entries.record_item(e["failed.jpg"], item("job-failed.jpg", "failed", error={"code": "x", "message": "boom"}))
    entries.record_item(e["canceled.jpg"], item("job-canceled.jpg", "canceled"))

    p = entries.plan(s, sorted(e), out)
    assert p.done == ["done.jpg"]
    assert p.failed == ["bad.jpg"]  # the same bytes would be refused again
    # Known to the server: wait for them (a failed one may have been retried meanwhile).
    assert p.watch == ["failed.jpg", "gone.jpg", "running.jpg"]
    assert p.upload == ["canceled.jpg", "new.jpg"]
    assert e["canceled.jpg"].item_id is None and e["gone.jpg"].downloaded is False


def test_changed_file_starts_over_unchanged_keeps_its_item(tmp_path):
    s, paths = fresh(tmp_path, {"a.jpg": b"a", "b.jpg": b"b"})
    for rel in s.inputs:
        entries.record_accepted(s.inputs[rel], "b1", item(f"job-{rel}", "succeeded"))
    write(paths["a.jpg"], b"a new photo")
    st.sync_inputs(s, {rel: st.fingerprint(p, s.inputs.get(rel)) for rel, p in paths.items()})
    assert s.inputs["a.jpg"].item_id is None
    assert s.inputs["b.jpg"].item_id == "job-b.jpg"
    assert entries.plan(s, ["a.jpg", "b.jpg"], tmp_path / "out").upload == ["a.jpg"]


def test_forget_batch_reuploads_what_was_not_downloaded(tmp_path):
    out = tmp_path / "out"
    s, _ = fresh(tmp_path, {"a.jpg": b"a", "b.jpg": b"b"})
    s.batch_id = "b1"
    for rel in s.inputs:
        entries.record_accepted(s.inputs[rel], "b1", item(f"job-{rel}", "succeeded"))
    write(out / "a.jpg", b"out")
    entries.mark_downloaded(s.inputs["a.jpg"], "a.jpg")
    entries.forget_batch(s, "b1")
    assert s.batch_id is None
    p = entries.plan(s, ["a.jpg", "b.jpg"], out)
    assert p.done == ["a.jpg"] and p.upload == ["b.jpg"]


def test_summary_counts_failures_and_duplicates(tmp_path):
    s, _ = fresh(tmp_path, {"a.jpg": b"a", "copy.jpg": b"a", "bad.jpg": b"x", "slow.jpg": b"s"})
    e = s.inputs
    entries.record_accepted(e["a.jpg"], "b1", item("ja", "succeeded"))
    entries.mark_downloaded(e["a.jpg"], "a.jpg")
    entries.record_accepted(e["copy.jpg"], "b1", item("jc", "skipped", duplicate_of="ja"))
    entries.mark_downloaded(e["copy.jpg"], "copy.jpg")
    entries.record_rejected(e["bad.jpg"], "invalid_image", "cannot decode")
    entries.record_accepted(e["slow.jpg"], "b1", item("js", "running"))
    sm = entries.summarize(s, sorted(e))
    assert (sm.total, sm.done) == (4, 2)
    assert sm.failed == [("bad.jpg", "invalid_image: cannot decode")]
    assert sm.duplicates == [("copy.jpg", "a.jpg")]
    assert sm.pending == ["slow.jpg"]


def test_result_link_of_a_duplicate_points_at_the_original():
    e = st.Entry(size=1, mtime_ns=1, sha256="x")
    entries.record_accepted(e, "b1", item("dup", "skipped", duplicate_of="orig"))
    assert entries.result_link(e) == "/api/v1/jobs/orig/result"
    entries.record_item(e, item("dup", "skipped", links={"result": "/api/v1/jobs/orig/result?x=1"}))
    assert entries.result_link(e) == "/api/v1/jobs/orig/result?x=1"


def test_output_names_keep_the_relative_path_and_never_collide():
    assert entries.output_name("sub/a.jpeg", "jpg", set()) == "sub/a.jpg"
    assert entries.output_name("a.png", "png", set()) == "a.png"
    assert entries.output_name("a.bmp", "png", {"a.png"}) == "a.bmp.png"


def test_collect_walks_dirs_skips_hidden_non_images_and_the_output_dir(tmp_path):
    root = tmp_path / "photos"
    for rel in (
        "a.jpg",
        "B.JPEG",
        "sub/c.png",
        "sub/deep/d.tiff",
        ".hidden.jpg",
        ".cache/e.jpg",
        "notes.txt",
        "out/old.png",
    ):
        write(root / rel, b"x")
    single = write(tmp_path / "single.webp", b"x")
    found = collect([root, single], exclude=root / "out")
    assert list(found) == ["B.JPEG", "a.jpg", "single.webp", "sub/c.png", "sub/deep/d.tiff"]
    assert found["sub/c.png"] == root / "sub/c.png"


def test_collect_refuses_two_inputs_with_one_output(tmp_path):
    a, b = write(tmp_path / "x/p.jpg", b"1"), write(tmp_path / "y/p.jpg", b"2")
    with pytest.raises(InputError, match="p.jpg"):
        collect([tmp_path / "x", tmp_path / "y"])
    assert os.path.exists(a) and os.path.exists(b)
