"""The whole stack over HTTP: redis-server, an enhance worker, gunicorn, nginx."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest
import redis as redis_lib
import requests

from testbed.stack import ROOT, kadr_env, start_gateway, start_nginx, start_worker, wait_for

MAX_UPLOAD = 1_000_000  # the app refuses one file over this (413 file_too_large)
MAX_REQUEST = 3_000_000  # nginx and the app refuse a body over this (413)


@contextlib.contextmanager
def running_stack(redis_server, models_dir, base, services=("enhance",), **settings):
    """Redis (the session's), one worker per service, gunicorn and nginx; yields handles."""
    env = kadr_env(
        redis_url=redis_server,
        storage_dir=base / "blobs",
        models_dir=models_dir,
        KADR_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        KADR_MAX_REQUEST_BYTES=str(MAX_REQUEST),
        KADR_REQUIRED_QUEUES=json.dumps(list(services)),
        **{"KADR_MAX_BATCH_FILES": "5", **settings},
    )
    r = redis_lib.Redis.from_url(redis_server, decode_responses=True)
    r.flushall()
    procs = []
    try:
        workers = {s: start_worker(s, env, base / "logs") for s in services}
        procs += workers.values()
        gw, gw_url = start_gateway(env, base / "logs")
        procs.append(gw)
        ngx, url = start_nginx(gw_url.removeprefix("http://"), base / "logs", max_body_bytes=MAX_REQUEST)
        procs.append(ngx)
        wait_for(
            lambda: requests.get(url + "/readyz", timeout=5).status_code == 200,
            180,
            "the stack to be ready (workers up, models loaded)",
        )
        yield {
            "url": url,
            "gateway_url": gw_url,
            "env": env,
            "redis": r,
            "workers": workers,
            "worker": next(iter(workers.values())),
            "gateway": gw,
            "nginx": ngx,
            "base": base,
        }
    finally:
        for p in reversed(procs):
            p.stop()
        r.close()


@contextlib.contextmanager
def full_stack(redis_server, models_dir, base, camera_secret: str, **settings):
    """All three workers, and one HMAC camera "gate" buffering a live MJPEG source."""
    from testbed.mjpeg_server import MjpegServer

    with MjpegServer(fps=10) as cam:
        cameras = [
            {"id": "gate", "source": cam.url, "fps": 10, "buffer_seconds": 5, "auth": "hmac", "secret": camera_secret}
        ]
        with running_stack(
            redis_server,
            models_dir,
            base,
            services=("enhance", "segment", "camera"),
            KADR_CAMERAS=json.dumps(cameras),
            KADR_MAX_VIDEO_FRAMES="30",
            **settings,
        ) as s:
            yield s


@pytest.fixture(scope="module")
def stack(redis_server, models_dir, tmp_path_factory):
    with running_stack(redis_server, models_dir, tmp_path_factory.mktemp("e2e")) as s:
        yield s


def create_key(env: dict, name: str, *scopes: str) -> str:
    """Through the real admin command, as an operator would (all scopes unless named)."""
    out = subprocess.run(
        [sys.executable, "-m", "client.cli", "keys", "create", name, *[f"--scope={s}" for s in scopes]],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def keys(stack):
    return create_key(stack["env"], "alice"), create_key(stack["env"], "bob")


class PoliteSession(requests.Session):
    """A client that does what kadr's own does with nginx's per-address rate limit: a
    request refused with 429 ``rate_limited`` (nginx answered; the gateway never saw it,
    so any method may be sent again) is sent again after its ``Retry-After``. Every test
    client shares 127.0.0.1, where a crowd of people would come from many addresses;
    the gateway's own 429s (quotas, stream caps) are returned as they are."""

    def request(self, method, url, *args, **kwargs):
        for _ in range(30):
            resp = super().request(method, url, *args, **kwargs)
            if resp.status_code != 429 or not resp.headers.get("Content-Type", "").startswith("application/json"):
                return resp
            try:
                code = resp.json().get("error", {}).get("code")
            except ValueError:
                return resp
            if code != "rate_limited":
                return resp
            resp.close()
            time.sleep(float(resp.headers.get("Retry-After") or 1))
        return resp


def key_session(key: str, base: str | None = None) -> requests.Session:
    """A :class:`PoliteSession` for one key (``s.base``: the stack's URL)."""
    s = PoliteSession()
    s.headers["Authorization"] = f"Bearer {key}"
    s.base = base
    return s


@pytest.fixture()
def api(stack, keys):
    s = key_session(keys[0], stack["url"])
    yield s
    s.close()


def wait_job(api, job_id: str, timeout: float = 240) -> dict:
    def done():
        j = api.get(f"{api.base}/api/v1/jobs/{job_id}", params={"wait": 20}, timeout=30).json()
        return j if j["state"] in ("succeeded", "failed", "canceled") else None

    return wait_for(done, timeout, f"job {job_id}", interval=0)


def sse_events(api, url: str, stop, into: list | None = None) -> list:
    """Server-Sent Events from ``url`` as (event, data) pairs, appended to ``into`` as they
    arrive (another thread may watch it), until ``stop(event, data)`` says so."""
    got = [] if into is None else into
    with api.get(url, stream=True, timeout=120) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for raw in resp.iter_lines(decode_unicode=True):
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("data: "):
                got.append((event, json.loads(raw[6:])))
                if stop(*got[-1]):
                    break
    return got
