"""The user's ``kadr enhance`` and ``kadr batch`` commands, run as a user runs them
(a subprocess, HTTP through nginx), against the whole stack."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from testbed.stack import ROOT, start_gateway, wait_for
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow

STATE = ".kadr-state.json"
ENHANCE = ("--quality", "fast", "--max-faces", "1", "--upscale", "1")


@pytest.fixture(scope="module")
def cli(redis_server, models_dir, tmp_path_factory):
    # One item on the queue at a time: a pause takes effect at once, so the interrupt
    # case below can stop a run that still has work on the server.
    with running_stack(
        redis_server, models_dir, tmp_path_factory.mktemp("cli"), services=("enhance",), KADR_BATCH_WINDOW="1"
    ) as s:
        key = create_key(s["env"], "cli-user")
        s["cli_env"] = {**os.environ, "KADR_URL": s["url"], "KADR_API_KEY": key}
        s["api"] = requests.Session()
        s["api"].headers["Authorization"] = f"Bearer {key}"
        s["restarted"] = []
        try:
            yield s
        finally:
            s["api"].close()
            for proc in s["restarted"]:  # running_stack stops only the processes it started
                proc.stop()


def kadr(cli, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *map(str, args)],
        cwd=ROOT,
        env=cli["cli_env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def photo(path, seed: int) -> bytes:
    """A small, nearly flat photo, different (by sha256) for every seed."""
    rng = np.random.default_rng(seed)
    arr = np.full((48, 64, 3), 60 + seed % 128, np.uint8) + rng.integers(0, 4, (48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def outputs(out) -> dict[str, tuple[int, int]]:
    """Output files (relative path → inode, mtime): the state file and hidden dirs aside."""
    return {
        p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and not any(x.startswith(".") for x in p.relative_to(out).parts)
    }


def state_of(out) -> dict:
    return json.loads((out / STATE).read_text())


def batch(cli, batch_id: str) -> dict:
    return cli["api"].get(f"{cli['url']}/api/v1/batches/{batch_id}", params={"limit": 0}, timeout=10).json()


def item_uploads(cli) -> int:
    """Uploads the gateway took in (nginx's access log), not counting "slow down" answers
    that the client rightly retried."""
    lines = [json.loads(ln) for ln in cli["nginx"].log_text().splitlines() if ln.startswith("{")]
    return sum(
        1
        for e in lines
        if e.get("method") == "POST"
        and e.get("uri", "").endswith("/items")
        and e.get("status") not in (429, 502, 503, 504)
    )


@pytest.fixture(scope="module")
def first_run(cli, tmp_path_factory):
    """A folder with a sub-folder, a corrupt file and a duplicate, enhanced once."""
    base = tmp_path_factory.mktemp("photos")
    src, out = base / "in", base / "out"
    same = photo(src / "alpha.png", 1)
    for i, rel in enumerate(("beta.png", "gamma.png", "sub/delta.png"), start=2):
        photo(src / rel, i)
    (src / "copy-of-alpha.png").write_bytes(same)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG " + bytes(range(256)))
    (src / ".hidden.png").write_bytes(same)  # hidden: not an input
    uploads_before = item_uploads(cli)
    res = kadr(cli, "enhance", src, "--out", out, *ENHANCE, "--batch-name", "e2e")
    return {"src": src, "out": out, "res": res, "uploads": item_uploads(cli) - uploads_before}


def test_enhance_a_folder_reports_the_corrupt_file_and_exits_1(cli, first_run):
    res, out = first_run["res"], first_run["out"]
    assert res.returncode == 1, res.stdout + res.stderr
    assert "broken.jpg" in res.stdout and "1 failed" in res.stdout
    assert "5 of 6 photos enhanced" in res.stdout
    assert "duplicate" in res.stdout
    got = outputs(out)
    assert sorted(got) == ["alpha.png", "beta.png", "copy-of-alpha.png", "gamma.png", "sub/delta.png"]
    for rel in got:
        with Image.open(out / rel) as im:
            im.load()
    # The duplicate was processed once and its result copied.
    assert (out / "alpha.png").read_bytes() == (out / "copy-of-alpha.png").read_bytes()
    st = state_of(out)
    b = batch(cli, st["batch_id"])
    assert b["state"] == "succeeded" and not b["open"]
    assert b["counts"]["succeeded"] == 4 and b["counts"]["skipped"] == 1 and b["total"] == 5
    assert "done" in res.stderr  # the progress line, without a terminal
    assert first_run["uploads"] == 6  # one request per file


def test_rerun_resumes_without_uploading_or_downloading_again(cli, first_run):
    out = first_run["out"]
    before, st_before = outputs(out), state_of(out)
    uploads = item_uploads(cli)
    res = kadr(cli, "enhance", first_run["src"], "--out", out, *ENHANCE)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "broken.jpg" in res.stdout and "5 of 6 photos enhanced" in res.stdout
    assert item_uploads(cli) == uploads
    assert outputs(out) == before  # same inodes and mtimes: nothing written again
    st = state_of(out)
    assert st["batch_id"] == st_before["batch_id"]
    assert {k: v["downloaded"] for k, v in st["inputs"].items()} == {
        k: v["downloaded"] for k, v in st_before["inputs"].items()
    }
    assert batch(cli, st["batch_id"])["total"] == 5

    # Other settings against the same output folder: refused, nothing sent.
    res = kadr(cli, "enhance", first_run["src"], "--out", out, "--quality", "medium")
    assert res.returncode == 2 and "--new-batch" in res.stderr
    assert item_uploads(cli) == uploads


def test_interrupted_run_resumes_and_downloads_each_photo_once(cli, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"p{i:02d}.png" for i in range(4)]  # each costs a face restoration (~20 s here)
    for i, n in enumerate(names):
        photo(src / n, 100 + i)
    log = open(tmp_path / "run1.log", "w+")
    p = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "enhance", str(src), "--out", str(out), *ENHANCE, "--concurrency", "2"],
        cwd=ROOT,
        env=cli["cli_env"],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: outputs(out) if out.exists() else None, 180, "the first output file")
        # Hold the rest on the server so the run is surely still going when interrupted.
        bid = state_of(out)["batch_id"]
        cli["api"].post(f"{cli['url']}/api/v1/batches/{bid}/pause", timeout=10).raise_for_status()
        p.send_signal(signal.SIGINT)
        rc = p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert rc == 130, text
    assert "run the same command again" in text
    first = outputs(out)
    assert 1 <= len(first) < len(names), text
    assert not any(name.endswith(".part") for name in os.listdir(out))

    res = kadr(cli, "batch", "resume", bid)
    assert res.returncode == 0 and bid in res.stdout, res.stderr
    res = kadr(cli, "enhance", src, "--out", out, *ENHANCE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 of 4 photos enhanced" in res.stdout
    final = outputs(out)
    assert sorted(final) == names
    # Files from the first run were not fetched again.
    assert {k: final[k] for k in first} == first
    st = state_of(out)
    assert st["batch_id"] == bid
    assert all(e["downloaded"] and e["output"] == rel for rel, e in st["inputs"].items())
    b = batch(cli, bid)
    assert b["total"] == 4 and b["counts"]["succeeded"] == 4


def test_batch_status_and_manifest(cli, first_run, tmp_path):
    bid = state_of(first_run["out"])["batch_id"]
    res = kadr(cli, "batch", "status", bid, "--json")
    assert res.returncode == 0, res.stderr
    body = json.loads(res.stdout)
    assert body["id"] == bid and body["counts"]["succeeded"] == 4
    res = kadr(cli, "batch", "status", bid)
    assert res.returncode == 0 and bid in res.stdout and "succeeded" in res.stdout
    assert len(res.stdout.strip().splitlines()) == 1

    res = kadr(cli, "batch", "manifest", bid)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 5
    assert any("delta" in json.dumps(r) for r in rows)
    target = tmp_path / "m.jsonl"
    res = kadr(cli, "batch", "manifest", bid, "--format", "jsonl", "--output", target)
    assert res.returncode == 0 and res.stdout == "", res.stderr
    lines = [json.loads(ln) for ln in target.read_text().splitlines()]
    assert len(lines) == 5

    res = kadr(cli, "batch", "status", "no-such-batch")
    assert res.returncode == 2 and "not_found" in res.stderr


def test_gateway_restart_mid_run_does_not_stop_the_command(cli, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = ["r0.png", "r1.png"]
    for i, n in enumerate(names):
        photo(src / n, 200 + i)
    log = open(tmp_path / "run.log", "w+")
    p = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "enhance", str(src), "--out", str(out), *ENHANCE],
        cwd=ROOT,
        env=cli["cli_env"],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: outputs(out) if out.exists() else None, 180, "the first output file")
        bid = state_of(out)["batch_id"]
        api = cli["api"]
        # Paused, the last photo is surely still to come while the gateway is down.
        api.post(f"{cli['url']}/api/v1/batches/{bid}/pause", timeout=10).raise_for_status()
        port = int(cli["gateway_url"].rsplit(":", 1)[1])
        cli["gateway"].stop()
        assert p.poll() is None
        gw, _ = start_gateway(cli["env"], cli["base"] / "logs", port=port)
        cli["restarted"].append(gw)
        api.post(f"{cli['url']}/api/v1/batches/{bid}/resume", timeout=10).raise_for_status()
        rc = p.wait(240)
    finally:
        if p.poll() is None:
            p.kill()
    log.seek(0)
    text = log.read()
    assert rc == 0, text
    assert sorted(outputs(out)) == names
    assert all(e["downloaded"] for e in state_of(out)["inputs"].values())


def test_variants_each_in_their_own_folder_one_upload_per_photo(cli, tmp_path):
    """Seed 000's pipeline made several outputs per photo: ``--variant`` gives one per
    photo and variant, each under a folder of the variant's name (as in the server's
    ZIP), from a single upload per photo; a rerun resumes; other variants are refused."""
    src, out = tmp_path / "in", tmp_path / "out"
    same = photo(src / "a.png", 40)
    photo(src / "sub/b.png", 41)
    (src / "a-again.png").write_bytes(same)
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    variants = ("--variant", "same:upscale=1", "--variant", "x2:upscale=2,quality=fast")
    uploads = item_uploads(cli)
    res = kadr(cli, "enhance", src, "--out", out, "--quality", "fast", "--max-faces", "0", *variants)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "6 of 8 outputs (2 variants per photo) enhanced" in res.stdout, res.stdout
    assert "same/bad.png" in res.stdout and "x2/bad.png" in res.stdout
    assert item_uploads(cli) - uploads == 4  # one request per file, whatever the variants
    got = outputs(out)
    assert sorted(got) == [
        "same/a-again.png",
        "same/a.png",
        "same/sub/b.png",
        "x2/a-again.png",
        "x2/a.png",
        "x2/sub/b.png",
    ]
    for rel, scale in (("same/a.png", 1), ("x2/a.png", 2), ("same/sub/b.png", 1), ("x2/sub/b.png", 2)):
        with Image.open(out / rel) as im:
            assert im.size == (64 * scale, 48 * scale), rel
    assert (out / "x2/a.png").read_bytes() == (out / "x2/a-again.png").read_bytes()
    b = batch(cli, state_of(out)["batch_id"])
    assert [v["name"] for v in b["variants"]] == ["same", "x2"] and b["total"] == 6

    before = outputs(out)
    res = kadr(cli, "enhance", src, "--out", out, "--quality", "fast", "--max-faces", "0", *variants)
    assert res.returncode == 1 and outputs(out) == before
    res = kadr(cli, "enhance", src, "--out", out, "--quality", "fast", "--max-faces", "0", variants[0], variants[1])
    assert res.returncode == 2 and "variants differ" in res.stderr, res.stderr
    res = kadr(cli, "enhance", src, "--out", tmp_path / "o2", "--variant", "upscale=2")
    assert res.returncode == 2 and "NAME:KEY=VALUE" in res.stderr
