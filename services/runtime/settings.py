"""Settings of the worker side: what every worker process reads (``WorkerSettings``) and
what a pool process that hosts upkeep adds (``PoolSettings``: the reaper and the batch
feeder run in the enhance and segment pool processes, see docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from services.contracts.settings import BatchSettings, Settings


class WorkerSettings(Settings):
    models_dir: Path = Path("var/models")
    # The worker serves Prometheus metrics here (0: off).
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    worker_heartbeat_seconds: float = 2.0

    @field_validator("models_dir")
    @classmethod
    def _absolute_models(cls, v: Path) -> Path:
        return v.expanduser().resolve()


class PoolSettings(WorkerSettings, BatchSettings):
    # Result-cache index: its own database so its keys can expire without touching jobs.
    cache_redis_url: str = "redis://127.0.0.1:6379/1"
    # A running job whose worker's heartbeat has been gone this long is requeued.
    reaper_interval_seconds: float = 10.0
    orphan_grace_seconds: float = 30.0
    # A message delivered this long ago whose job never started is held by no worker (a
    # broker connection loss stranded it in kombu's unacked hash): back on its queue.
    stranded_message_seconds: float = Field(120.0, gt=0)
