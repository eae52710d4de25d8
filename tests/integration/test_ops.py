"""The ops exporter and the autoscaler against a real Redis and a real enhance worker.

The worker runs without weights (its tasks would fail fast, and its processes start in
a second); that is all the autoscaler needs: it sizes pools, it does not run models.
A backlog is built by holding the worker off its queue, as behind a slow worker.
"""

from __future__ import annotations

import uuid

import pytest
import redis as redis_lib
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.contracts.tasks import ENHANCE_PHOTO, ENHANCE_QUEUE
from services.ops.actuator import CeleryPools
from services.ops.autoscaler import Autoscaler
from services.ops.exporter import OpsCollector
from services.ops.observe import workers_by_queue
from services.ops.settings import OpsSettings, QueueLimits
from testbed.stack import kadr_env, sample, start_worker, wait_for

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture(scope="module")
def ops(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("ops")
    url = redis_server.rsplit("/", 1)[0] + "/6"
    env = kadr_env(redis_url=url, storage_dir=base / "blobs", models_dir=base / "no-models")
    r = redis_lib.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    proc = start_worker("enhance", env, base / "logs", concurrency=1)
    app = Celery(broker=url)
    wait_for(
        lambda: workers_by_queue(r, [ENHANCE_QUEUE])[ENHANCE_QUEUE]["processes"] == 1,
        60,
        "the worker's pool process heartbeat",
    )
    yield {"r": r, "url": url, "node": proc.node, "app": app, "base": base}
    proc.stop()
    r.flushdb()
    r.close()


def _settings(ops, **kw) -> OpsSettings:
    limits = kw.pop("limits", QueueLimits(min=1, max=2, footprint_bytes=64 * MIB))
    return OpsSettings(
        redis_url=ops["url"],
        storage_dir=ops["base"] / "blobs",
        autoscale={"enhance": limits},
        autoscale_cooldown_seconds=0,
        # CPU is whatever the rest of the suite does: keep it out of these decisions.
        autoscale_cpu_high_percent=100,
        autoscale_cpu_low_percent=100,
        autoscale_ram_reserve_bytes=0,
        **kw,
    )


def _scrape(ops) -> dict:
    reg = CollectorRegistry()
    reg.register(OpsCollector(_settings(ops), ops["r"]))
    out: dict = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _processes(pools: CeleryPools, node: str) -> int:
    return next((n.processes for n in pools.survey() if n.node == node), -1)


def test_exporter_reports_queues_workers_host_and_redis(ops):
    m = _scrape(ops)
    assert sample(m, "kadr_redis_up") == 1
    assert sample(m, "kadr_redis_memory_used_bytes") > 0
    assert sample(m, "kadr_queue_messages", queue="enhance", state="waiting") == 0
    assert sample(m, "kadr_queue_worker_processes", queue="enhance") == 1
    assert sample(m, "kadr_queue_worker_processes", queue="segment") == 0
    assert sample(m, "kadr_queue_process_max_resident_memory_bytes", queue="enhance") > 10 * MIB
    assert sample(m, "kadr_queue_process_max_resident_memory_bytes", queue="segment") is None  # none alive
    assert sample(m, "kadr_host_memory_bytes", kind="total") > sample(m, "kadr_host_memory_bytes", kind="available")
    assert sample(m, "kadr_host_cpu_seconds_total", mode="idle") > 0
    assert sample(m, "kadr_host_disk_bytes", kind="free") > 0
    assert not any(k.startswith("kadr_gpu_") for k in m)  # no GPU here: no series, not zeros


def test_backlog_grows_idleness_shrinks_and_a_memory_budget_blocks(ops):
    r, node, app = ops["r"], ops["node"], ops["app"]
    pools = CeleryPools(app, timeout=2)
    assert _processes(pools, node) == 1
    assert app.control.cancel_consumer(ENHANCE_QUEUE, destination=[node], reply=True, timeout=5)
    try:
        for _ in range(6):  # jobs that do not exist: the worker drops them at once later
            app.send_task(ENHANCE_PHOTO, args=[{"job_id": uuid.uuid4().hex}], queue=ENHANCE_QUEUE)
        wait_for(lambda: r.llen(ENHANCE_QUEUE) == 6, 10, "6 messages waiting")
        m = _scrape(ops)
        assert sample(m, "kadr_queue_messages", queue="enhance", state="waiting") == 6

        dry = Autoscaler(_settings(ops, autoscale_dry_run=True), r, pools).tick()[0]
        assert (dry.action, dry.reason) == ("grow", "load_high") and "backlog 6 > 2 x 1" in dry.detail
        assert _processes(pools, node) == 1  # dry run: decided, not done

        scaler = Autoscaler(_settings(ops), r, pools)
        d = scaler.tick()[0]
        assert (d.action, d.delta, d.reason) == ("grow", 1, "load_high"), d
        wait_for(lambda: _processes(pools, node) == 2, 30, "the pool to grow to 2")
        wait_for(
            lambda: workers_by_queue(r, [ENHANCE_QUEUE])[ENHANCE_QUEUE]["processes"] == 2,
            30,
            "the new process's heartbeat",
        )

        # Backlog 6 > 2 x 2 still asks for more, but one more would need more than the
        # queue's budget has left: held, and said why.
        tight = QueueLimits(
            min=1,
            max=3,
            footprint_bytes=64 * MIB,
            memory_budget_bytes=workers_by_queue(r, [ENHANCE_QUEUE])[ENHANCE_QUEUE]["total_rss"] + 10 * MIB,
        )
        d = Autoscaler(_settings(ops, limits=tight), r, pools).tick()[0]
        assert (d.action, d.reason) == ("hold", "ram_budget"), d
        assert _processes(pools, node) == 2
    finally:
        assert app.control.add_consumer(ENHANCE_QUEUE, destination=[node], reply=True, timeout=5)

    wait_for(lambda: r.llen(ENHANCE_QUEUE) == 0 and not r.hlen("unacked"), 30, "the backlog to drain")
    d = scaler.tick()[0]
    assert (d.action, d.delta, d.reason) == ("shrink", -1, "idle"), d
    wait_for(lambda: _processes(pools, node) == 1, 30, "the pool to shrink to 1")
    d = scaler.tick()[0]
    assert (d.action, d.reason) == ("hold", "steady")  # at min
