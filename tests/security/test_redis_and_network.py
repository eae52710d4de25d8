"""Finding 7: Redis without a password (any container could mint keys or send Celery
remote-control commands), /readyz scanning the whole keyspace on every call, and the
open endpoints without a rate limit. Redis now wants the password from a file (compose's
secret, `make up`'s var/secrets), /readyz reads an index of workers, and nginx limits
/healthz, /readyz and /metrics per client."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
import redis as redis_lib
import requests
from kombu import Consumer, Queue

from services.platform.celery_app import create_celery
from services.runtime.settings import PoolSettings
from services.store.apikeys import create_key
from services.store.connection import connect
from services.store.workers import live_workers, publish
from testbed.stack import Proc, binary, free_port, gateway_behind_nginx, kadr_env, wait_for

PASSWORD = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture()
def locked_redis(tmp_path):
    """redis-server as `make up` runs it: the repository's config included, the password
    from a generated file."""
    from testbed.stack import ROOT

    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n")
    conf = tmp_path / "redis.conf"
    conf.write_text(f'include {ROOT / "infra/redis/redis.conf"}\nrequirepass "{PASSWORD}"\n')
    port = free_port()
    proc = Proc(
        f"redis-{port}",
        [binary("redis-server"), str(conf), "--port", str(port), "--dir", str(tmp_path)],
        log_dir=tmp_path,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: _answers(url, PASSWORD), 20, "redis-server with a password")
    yield url, secret
    proc.stop()


def _answers(url: str, password: str) -> bool:
    try:
        return redis_lib.Redis.from_url(url, password=password, socket_connect_timeout=0.5).ping()
    except redis_lib.RedisError:
        return False


def test_without_the_password_nothing_can_be_read_or_written(locked_redis):
    url, secret = locked_redis
    anonymous = redis_lib.Redis.from_url(url)
    with pytest.raises(redis_lib.AuthenticationError):
        create_key(anonymous, "minted-by-a-neighbour")
    with pytest.raises(redis_lib.AuthenticationError):
        anonymous.publish("/0.celery.pidbox", "{}")  # Celery remote control
    # kadr's processes take it from the file, into the broker's URL too.
    s = PoolSettings(redis_url=url, cache_redis_url=url.replace("/0", "/1"), redis_password_file=secret)
    assert PASSWORD in s.cache_redis_url
    assert PASSWORD not in url and connect(s.redis_url).ping()
    key, _ = create_key(connect(s.redis_url), "operator")
    assert key
    app = create_celery(s)
    app.send_task("enhance.photo", args=[{"job_id": "j1"}], queue="locked-test")
    got = []
    with (
        app.connection_for_read() as conn,
        Consumer(
            conn, [Queue("locked-test")], accept=["json"], callbacks=[lambda body, m: (got.append(body), m.ack())]
        ),
    ):
        conn.drain_events(timeout=5)
    assert got and got[0][0][0]["job_id"] == "j1"


def test_readyz_costs_a_read_per_worker_not_a_scan_of_the_keyspace(redis_server, redis_client, tmp_path):
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    p = redis_client.pipeline()
    for i in range(20_000):
        p.set(f"kadr:job:filler-{i}", "x")
    p.execute()
    publish(redis_client, service="enhance", queues=["enhance"], models={}, ttl=30)
    assert [w["service"] for w in live_workers(redis_client)] == ["enhance"]
    client = create_app(
        GatewaySettings(redis_url=redis_server, storage_dir=tmp_path, required_queues=["enhance"])
    ).test_client()
    redis_client.config_resetstat()
    body = client.get("/readyz").json
    assert body["checks"]["queues"]["enhance"]["workers"] == 1
    stats = redis_client.info("commandstats")
    assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats, sorted(stats)


def test_the_open_endpoints_are_rate_limited_per_client(redis_server, models_dir, tmp_path):
    env = kadr_env(
        redis_url=redis_server, storage_dir=tmp_path / "blobs", models_dir=models_dir, KADR_REQUIRED_QUEUES="[]"
    )
    with (
        gateway_behind_nginx(env, tmp_path / "logs", rate="5r/s", burst=5) as (url, _),
        concurrent.futures.ThreadPoolExecutor(20) as pool,
    ):
        answers = list(pool.map(lambda _: requests.get(f"{url}/readyz", timeout=10), range(60)))
    codes = [r.status_code for r in answers]
    assert codes.count(429) >= 30, codes
    assert {json.loads(r.text)["error"]["code"] for r in answers if r.status_code == 429} == {"rate_limited"}
