"""Held connections through the real stack (nginx, gunicorn as configured, Redis):
many more open progress streams and long polls than the gateway has threads, while the
API keeps answering; and the caps on them answered with their codes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time

import pytest
import requests

from testbed.photos import flat_png
from testbed.stack import wait_for
from tests.e2e.conftest import create_key, key_session, running_stack

pytestmark = pytest.mark.slow

GUNICORN_THREADS = 2 * 8  # what the gthread gateway had: 2 processes x 8 threads


def _unlimited(get, url: str, **kw):
    """``get(url, **kw)``, waiting out nginx's per-client rate limit (20 r/s here, and every
    test is one client) as a browser's EventSource or a polite client would."""
    for _ in range(30):
        r = get(url, **kw)
        if r.status_code != 429 or r.json()["error"]["code"] != "rate_limited":
            return r
        time.sleep(float(r.headers.get("Retry-After", 1)))
    return r


def _open_stream(url: str, key: str):
    """An SSE stream, read up to its snapshot; returns the open response."""
    r = _unlimited(requests.get, url, headers={"Authorization": f"Bearer {key}"}, stream=True, timeout=30)
    if r.status_code != 200:
        return r
    # The line iterator stays with the response: dropped, it would close the connection.
    r.lines = lines = r.iter_lines(decode_unicode=True)
    for line in lines:
        if line == "event: progress":
            assert next(lines).startswith("data: {")
            return r
    raise AssertionError("the stream ended without a snapshot")


def _paused_item(s: requests.Session, url: str) -> str:
    bid = s.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1}}).json()["id"]
    s.post(f"{url}/api/v1/batches/{bid}/pause").raise_for_status()
    r = s.post(f"{url}/api/v1/batches/{bid}/items", files=[("files", ("w.png", flat_png(seed=7)))])
    assert r.status_code == 202, r.text
    return r.json()["accepted"][0]["id"]


def test_streams_and_long_polls_beyond_the_threads_leave_the_api_answering(models_dir, redis_server, tmp_path):
    with (
        running_stack(redis_server, models_dir, tmp_path) as s,
        concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool,
    ):
        url = s["url"]
        keys = [create_key(s["env"], f"crowd-{i}") for i in range(2)]
        api = [key_session(k) for k in keys]
        batches = [a.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast"}}).json()["id"] for a in api]
        item = _paused_item(api[0], url)
        n_streams = 4 * GUNICORN_THREADS
        streams = list(
            pool.map(
                lambda i: _open_stream(f"{url}/api/v1/batches/{batches[i % 2]}/events", keys[i % 2]), range(n_streams)
            )
        )
        try:
            assert [r.status_code for r in streams] == [200] * n_streams  # each read its snapshot
            # Long polls on top, all waiting (the item is paused).
            polls = [
                pool.submit(
                    _unlimited,
                    requests.get,
                    f"{url}/api/v1/jobs/{item}",
                    params={"wait": 20},
                    headers={"Authorization": f"Bearer {keys[0]}"},
                    timeout=60,
                )
                for _ in range(GUNICORN_THREADS)
            ]
            wait_for(
                lambda: _held(s) >= n_streams + GUNICORN_THREADS,
                30,
                "every stream and long poll to be held by the gateway",
            )
            # The API answers while they are all held.
            assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
            assert api[1].get(f"{url}/api/v1/jobs/{item}", timeout=5).status_code == 404  # not bob's
            assert api[0].get(f"{url}/api/v1/jobs/{item}", timeout=5).json()["state"] == "pending"
            up = api[1].post(
                f"{url}/api/v1/enhance",
                files={"file": ("p.png", flat_png(seed=3))},
                data={"quality": "fast", "upscale": "1", "max_faces": "0"},
                timeout=10,
            )
            assert up.status_code == 202, up.text
            # A stream sees its batch move: an item added now shows up on bob's open streams.
            r = api[1].post(
                f"{url}/api/v1/batches/{batches[1]}/items", files=[("files", ("n.png", flat_png(seed=11)))], timeout=10
            )
            assert r.status_code == 202
            moved = streams[1].lines
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = next(moved)
                if line.startswith("data: ") and '"total":1' in line.replace(" ", ""):
                    break
            else:
                raise AssertionError("the stream never showed the new item")
            assert all(p.result().status_code == 200 for p in polls)  # answered at their end
        finally:
            for r in streams:
                r.close()
        wait_for(lambda: _held(s) == 0, 30, "the holds to be given back when the streams close")


def _held(s) -> int:
    """Open holds across keys, as the gateway counts them (the per-key sorted sets)."""
    r = s["redis"]
    return sum(r.zcard(k) for k in r.scan_iter("kadr:holds:*"))


def test_past_the_per_key_cap_streams_and_long_polls_get_429(models_dir, redis_server, tmp_path):
    with running_stack(redis_server, models_dir, tmp_path, KADR_MAX_STREAMS_PER_KEY="3") as s:
        url = s["url"]
        key, other = create_key(s["env"], "greedy"), create_key(s["env"], "other")
        api = key_session(key)
        bid = api.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast"}}).json()["id"]
        item = _paused_item(api, url)
        events = f"{url}/api/v1/batches/{bid}/events"
        with contextlib.ExitStack() as held:
            for _ in range(3):
                r = held.enter_context(_open_stream(events, key))
                assert r.status_code == 200
            over = _open_stream(events, key)
            assert over.status_code == 429 and over.json()["error"]["code"] == "too_many_streams"
            assert over.headers["Retry-After"]
            poll = api.get(f"{url}/api/v1/jobs/{item}", params={"wait": 5}, timeout=30)
            assert poll.status_code == 429 and poll.json()["error"]["code"] == "too_many_streams"
            # Reads without a wait, and other keys, are not held back.
            assert api.get(f"{url}/api/v1/jobs/{item}", timeout=5).status_code == 200
            other_bid = key_session(other).post(f"{url}/api/v1/batches", json={"params": {}}).json()["id"]
            assert _open_stream(f"{url}/api/v1/batches/{other_bid}/events", other).status_code == 200
        # Closed streams give their place back (the server notices at its next write).

        def room() -> bool:
            r = _open_stream(events, key)
            r.close()
            return r.status_code == 200

        wait_for(room, 60, "room for a stream again", interval=1)


def test_a_recycled_gateway_worker_ends_its_streams_cleanly_at_once(models_dir, redis_server, tmp_path):
    """gunicorn recycles workers (max_requests) and restarts them on a reload: held
    streams end on their own within a second or two of the drain, not cut with a 502 at
    the 30 s graceful timeout, and the client's reconnect finds a live worker."""
    import os
    import signal

    with running_stack(redis_server, models_dir, tmp_path) as s:
        url = s["url"]
        key = create_key(s["env"], "reload")
        bid = key_session(key).post(f"{url}/api/v1/batches", json={"params": {"quality": "fast"}}).json()["id"]
        events = f"{url}/api/v1/batches/{bid}/events"
        streams = [_open_stream(events, key) for _ in range(10)]
        assert all(r.status_code == 200 for r in streams)
        os.kill(s["gateway"].pid, signal.SIGHUP)  # graceful reload: every worker drains
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            # Each stream runs to a clean end of its body (no error from a cut connection).
            ended = [pool.submit(lambda r: sum(1 for _ in r.lines), r) for r in streams]
            for f in ended:
                f.result(timeout=20)  # well inside gunicorn's 30 s graceful timeout
        again = _open_stream(events, key)
        assert again.status_code == 200
        again.close()
