"""Settings of the ops processes (exporter, autoscaler, janitor): retention, callback
delivery and the cameras whose webhooks it signs (the janitor), plus theirs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.contracts.settings import MIB, CallbackSettings, CameraListSettings, RetentionSettings


class QueueLimits(BaseModel):
    """How many pool processes the autoscaler may run for one queue (all its workers
    together), and what one more is assumed to cost before any has been measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)
    footprint_bytes: int = Field(default=1024 * MIB, gt=0)
    # What the queue's processes may hold together (its containers' memory limit);
    # None: only the host's free memory bounds growth.
    memory_budget_bytes: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> QueueLimits:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class OpsSettings(RetentionSettings, CallbackSettings, CameraListSettings):  # cameras: the janitor signs webhooks
    retention_interval_seconds: float = Field(60.0, gt=0)  # the janitor's round
    exporter_port: int = Field(9100, ge=1, le=65535)
    exporter_host: str = "127.0.0.1"
    autoscaler_metrics_port: int = Field(9104, ge=0, le=65535)  # 0: no endpoint
    janitor_port: int = Field(9105, ge=1, le=65535)  # retention's /metrics and /healthz
    # Queues the autoscaler manages; the camera worker (threads pool, one per camera
    # set) is sized by its cameras, not by load, and is left out by default.
    autoscale: dict[str, QueueLimits] = {
        "enhance": QueueLimits(min=1, max=2, footprint_bytes=1200 * MIB),
        "segment": QueueLimits(min=1, max=2, footprint_bytes=700 * MIB),
    }
    autoscale_interval_seconds: float = Field(10.0, gt=0)
    autoscale_cooldown_seconds: float = Field(60.0, ge=0)
    autoscale_dry_run: bool = False
    # Growth rules (from the origin): any of these, with work waiting, adds a process.
    autoscale_cpu_high_percent: float = Field(80.0, gt=0, le=100)
    autoscale_backlog_per_process: float = Field(2.0, gt=0)
    autoscale_task_seconds_high: float = Field(10.0, gt=0)
    # Shrink when every signal is this low and a process is idle.
    autoscale_cpu_low_percent: float = Field(30.0, ge=0, le=100)
    # RAM kept free beyond one more process's measured footprint (page cache, spikes).
    autoscale_ram_reserve_bytes: int = Field(256 * MIB, ge=0)
    autoscale_gpu_reserve_bytes: int = Field(512 * MIB, ge=0)
    # Celery remote-control replies wait this long.
    control_timeout_seconds: float = Field(2.0, gt=0)
