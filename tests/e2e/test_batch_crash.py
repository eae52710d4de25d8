"""A batch survives its machinery dying under it: kill -9 of the whole enhance worker,
a gateway restart and a Redis restart (AOF), one after the other while items run.
Afterwards every item ended exactly once (one outcome written per item, read from the
workers' own JSON logs) and the counts, the manifest and the files agree."""

from __future__ import annotations

import collections
import csv
import io
import json
import signal

import pytest
import requests

from testbed.photos import flat_png
from testbed.stack import start_gateway, start_redis, start_worker, wait_for
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
N = 9


def _outcomes(log_paths) -> collections.Counter:
    """Outcome lines per job id across the worker logs ("job succeeded", "job failed: ...")."""
    out = collections.Counter()
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if (
                rec.get("logger") == "kadr.jobs"
                and rec.get("job_id")
                and (rec["message"] == "job succeeded" or rec["message"].startswith("job failed"))
            ):
                out[rec["job_id"]] += 1
    return out


def test_batch_survives_worker_kill_gateway_restart_and_redis_restart(models_dir, tmp_path):
    redis_dir = tmp_path / "redis"
    redis_proc, redis_url = start_redis(redis_dir)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    extra = []
    settings = dict(
        KADR_BATCH_WINDOW="3",
        KADR_BATCH_REDISPATCH_SECONDS="5",
        KADR_REAPER_INTERVAL_SECONDS="1",
        KADR_ORPHAN_GRACE_SECONDS="3",
        KADR_STRANDED_MESSAGE_SECONDS="5",
    )
    try:
        with running_stack(redis_url, models_dir, tmp_path, **settings) as s:
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'crash')}"
            url = s["url"]
            bid = api.post(
                f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1, "max_faces": 1}}
            ).json()["id"]
            for i in range(0, N, 4):
                r = api.post(
                    f"{url}/api/v1/batches/{bid}/items",
                    files=[("files", (f"c{j}.png", flat_png(seed=500 + j))) for j in range(i, min(N, i + 4))],
                )
                assert r.status_code == 202, r.text
            api.post(f"{url}/api/v1/batches/{bid}/close")

            def succeeded(at_least):
                def check():
                    b = api.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}, timeout=5).json()
                    return b if b["counts"]["succeeded"] >= at_least else None

                return wait_for(check, 240, f"{at_least} items done", interval=0.2)

            succeeded(2)
            # 1. The whole worker, main process and pool, dies at once; a new one takes over.
            s["worker"].signal_group(signal.SIGKILL)
            extra.append(start_worker("enhance", s["env"], tmp_path / "logs"))
            succeeded(4)
            # 2. The gateway restarts on its port (nginx keeps pointing at it).
            gw_port = int(s["gateway_url"].rsplit(":", 1)[1])
            s["gateway"].stop()
            gw, _ = start_gateway(s["env"], tmp_path / "logs", port=gw_port)
            extra.append(gw)
            succeeded(6)
            # 3. Redis restarts from its append-only file (a clean shutdown writes it out).
            redis_proc.stop()
            redis_proc, _ = start_redis(redis_dir, port=port)
            end = wait_for(
                lambda: (
                    (b := api.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}, timeout=5).json())["state"]
                    not in ("running", "queued")
                    and b
                ),
                300,
                "the batch to end",
                interval=0.3,
            )
            assert end["state"] == "succeeded", end
            assert end["counts"]["succeeded"] == N and sum(end["counts"].values()) == N
            assert end["progress"] == 1.0
            rows = list(csv.DictReader(io.StringIO(api.get(f"{url}/api/v1/batches/{bid}/manifest.csv").text)))
            assert len(rows) == N and all(r["state"] == "succeeded" and r["output_url"] for r in rows)
            for row in rows[:3]:
                assert api.get(url + row["output_url"]).status_code == 200
            logs = sorted((tmp_path / "logs").glob("enhance-*.log"))
            outcomes = _outcomes(logs)
            ids = {r["item_id"] for r in rows}
            assert {j: outcomes[j] for j in ids} == {j: 1 for j in ids}, outcomes
    finally:
        for p in extra:
            p.stop()
        redis_proc.stop()
