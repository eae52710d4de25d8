"""The ops exporter: what no single kadr process can see, as Prometheus metrics.

``python -m services.ops.exporter`` serves ``/metrics`` on ``KADR_EXPORTER_PORT``
(9100). Everything is read at scrape time, so a scrape shows the system as it is:

- queues: messages waiting (the Redis list Celery consumes) and reserved (taken by a
  worker, not yet acknowledged: kombu keeps those in the ``unacked`` hash until the
  late ack, which is the work a dead worker would hand back);
- workers: live pool processes per queue (their heartbeats), how many run a job now,
  and the biggest one's resident memory;
- the host: memory, CPU time by mode (rate() it), disk of the blob store;
- Redis: used and maximum memory (a broker at ``maxmemory`` with ``noeviction``
  refuses writes: every upload would fail);
- GPUs through NVML when the driver answers: utilisation, memory, temperature. On a
  machine without one there are no GPU series at all, never zeros that read as an
  idle GPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import psutil
import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.contracts.tasks import QUEUES
from services.platform.logs import setup_logging
from services.store.connection import connect

from .observe import Nvml, queue_depths, workers_by_queue
from .settings import OpsSettings

log = logging.getLogger("kadr.ops.exporter")


class OpsCollector(Collector):
    def __init__(self, s: OpsSettings, r: redis.Redis, nvml: Nvml | None = None):
        self.s, self.r = s, r
        self.nvml = nvml or Nvml()
        self.queues = list(QUEUES)

    def collect(self) -> Iterator[Metric]:
        yield from self._redis_and_queues()
        yield from self._host()
        yield from self._gpus()

    def _redis_and_queues(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("kadr_redis_up", "1 when the exporter can read Redis")
        try:
            info = self.r.info("memory")
            depths = queue_depths(self.r, self.queues)
            workers = workers_by_queue(self.r, self.queues)
        except redis.RedisError as e:
            log.warning("redis unreadable: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        used = GaugeMetricFamily("kadr_redis_memory_used_bytes", "Memory Redis uses")
        used.add_metric([], info["used_memory"])
        yield used
        mx = GaugeMetricFamily("kadr_redis_memory_max_bytes", "Redis maxmemory (0: unlimited)")
        mx.add_metric([], info.get("maxmemory", 0))
        yield mx
        msgs = GaugeMetricFamily(
            "kadr_queue_messages", "Messages on a queue: waiting or reserved by a worker", labels=["queue", "state"]
        )
        procs = GaugeMetricFamily(
            "kadr_queue_worker_processes", "Live pool processes consuming the queue", labels=["queue"]
        )
        busy = GaugeMetricFamily("kadr_queue_busy_processes", "Pool processes running a job now", labels=["queue"])
        rss = GaugeMetricFamily(
            "kadr_queue_process_max_resident_memory_bytes",
            "Resident memory of the biggest live process of the queue",
            labels=["queue"],
        )
        for q in self.queues:
            msgs.add_metric([q, "waiting"], depths[q]["waiting"])
            msgs.add_metric([q, "reserved"], depths[q]["reserved"])
            procs.add_metric([q], workers[q]["processes"])
            busy.add_metric([q], workers[q]["busy"])
            if workers[q]["processes"]:
                rss.add_metric([q], workers[q]["max_rss"])
        yield from (msgs, procs, busy, rss)

    def _host(self) -> Iterator[Metric]:
        vm = psutil.virtual_memory()
        mem = GaugeMetricFamily("kadr_host_memory_bytes", "Host memory", labels=["kind"])
        mem.add_metric(["total"], vm.total)
        mem.add_metric(["available"], vm.available)
        yield mem
        cpu = CounterMetricFamily("kadr_host_cpu_seconds", "CPU time of all cores by mode", labels=["mode"])
        times = psutil.cpu_times()
        for mode in ("user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal"):
            if hasattr(times, mode):
                cpu.add_metric([mode], getattr(times, mode))
        yield cpu
        cores = GaugeMetricFamily("kadr_host_cpus", "Logical CPUs")
        cores.add_metric([], psutil.cpu_count() or 1)
        yield cores
        load = GaugeMetricFamily("kadr_host_load1", "1-minute load average")
        load.add_metric([], os.getloadavg()[0])
        yield load
        disk = GaugeMetricFamily("kadr_host_disk_bytes", "Disk holding the blob store", labels=["kind"])
        path = self.s.storage_dir if self.s.storage_dir.exists() else self.s.storage_dir.anchor
        du = psutil.disk_usage(str(path))
        disk.add_metric(["total"], du.total)
        disk.add_metric(["free"], du.free)
        yield disk

    def _gpus(self) -> Iterator[Metric]:
        gpus = self.nvml.read()
        if not gpus:
            return
        labels = ["gpu", "name"]
        util = GaugeMetricFamily("kadr_gpu_utilization_ratio", "GPU busy share over the last sample", labels=labels)
        used = GaugeMetricFamily("kadr_gpu_memory_used_bytes", "GPU memory in use", labels=labels)
        total = GaugeMetricFamily("kadr_gpu_memory_total_bytes", "GPU memory", labels=labels)
        temp = GaugeMetricFamily("kadr_gpu_temperature_celsius", "GPU core temperature", labels=labels)
        for g in gpus:
            lab = [g["gpu"], g["name"]]
            util.add_metric(lab, g["util"])
            used.add_metric(lab, g["mem_used"])
            total.add_metric(lab, g["mem_total"])
            temp.add_metric(lab, g["temp"])
        yield from (util, used, total, temp)


def main() -> None:
    s = OpsSettings()
    setup_logging(s.log_level, service="exporter")
    reg = CollectorRegistry()
    reg.register(OpsCollector(s, connect(s.redis_url)))
    server, thread = start_http_server(s.exporter_port, addr=s.exporter_host, registry=reg)
    log.info("exporter listening", extra={"host": s.exporter_host, "port": s.exporter_port})
    try:
        thread.join()  # the server runs in its thread; SIGTERM ends the process
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
