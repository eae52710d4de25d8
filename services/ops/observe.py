"""What the ops processes read about queues, workers and GPUs (Redis, NVML).

Shared by the exporter (which shows it) and the autoscaler (which acts on it).
"""

from __future__ import annotations

import logging
import threading
from typing import TypedDict

from services.store.fleet import busy_worker_ids, queue_depths, workers_by_queue

__all__ = ["GpuReading", "Nvml", "busy_worker_ids", "free_gpu_bytes", "queue_depths", "workers_by_queue"]

log = logging.getLogger("kadr.ops")


class GpuReading(TypedDict):
    gpu: str  # NVML index
    name: str
    util: float  # busy share, 0..1
    mem_used: int  # bytes
    mem_total: int
    temp: int  # Celsius


class Nvml:
    """NVML if a driver answers; otherwise ``available`` is False and nothing is read."""

    def __init__(self) -> None:
        self.available = False
        self._lock = threading.Lock()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            self.count = pynvml.nvmlDeviceGetCount()
            self.available = self.count > 0
        except Exception as e:  # no package, no driver, no device: all mean "no GPU series"
            log.info("no GPU metrics: %s", e)

    def read(self) -> list[GpuReading]:
        if not self.available:
            return []
        nv = self.nv
        out: list[GpuReading] = []
        with self._lock:
            for i in range(self.count):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                out.append(
                    {
                        "gpu": str(i),
                        "name": nv.nvmlDeviceGetName(h),
                        "util": nv.nvmlDeviceGetUtilizationRates(h).gpu / 100.0,
                        "mem_used": mem.used,
                        "mem_total": mem.total,
                        "temp": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                    }
                )
        return out


def free_gpu_bytes(nvml: Nvml) -> int | None:
    gpus = nvml.read()
    return max((g["mem_total"] - g["mem_used"] for g in gpus), default=None) if gpus else None
