"""kadr settings: one object per process, read from ``KADR_*`` environment variables.

Every limit the system enforces lives here so an operator can see and change it in
one place; each has a matching 4xx/503 answer, a log line and a counter where it bites.
Entrypoints build the object once and pass it down; tests build their own.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KIB = 1024
MIB = 1024 * KIB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KADR_", extra="forbid", frozen=True)

    # Where things live
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Result-cache index: its own database so its keys can expire without touching jobs.
    cache_redis_url: str = "redis://127.0.0.1:6379/1"
    storage_dir: Path = Path("var/blobs")
    models_dir: Path = Path("var/models")
    log_level: str = "INFO"

    # Auth
    auth_disabled: bool = False  # local development only; the gateway logs it loudly

    # Upload limits (each answered with a clear 4xx)
    max_upload_bytes: int = 50 * MIB
    max_image_pixels: int = 40_000_000
    max_batch_files: int = 20
    max_queue_backlog: int = 1000  # per queue; past it new work gets 503 + Retry-After

    # Jobs
    job_ttl_seconds: int = 7 * 24 * 3600
    result_cache_ttl_seconds: int = 24 * 3600

    # Celery / reliability
    visibility_timeout_seconds: int = 3600
    task_soft_time_limit_seconds: int = 600
    task_time_limit_seconds: int = 900
    max_deliveries: int = 3  # starts of one task (a worker death counts as one) before `worker_lost`
    worker_heartbeat_seconds: float = 2.0

    # Enhance defaults the gateway applies before sending a task
    enhance_default_quality: str = "medium"
    enhance_default_max_faces: int = 20

    @field_validator("storage_dir", "models_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # Never resolved against whatever directory a worker happens to start in later.
        return v.expanduser().resolve()

    @field_validator("task_time_limit_seconds")
    @classmethod
    def _limits_below_visibility(cls, v: int, info) -> int:
        vis = info.data.get("visibility_timeout_seconds", 3600)
        soft = info.data.get("task_soft_time_limit_seconds", 0)
        if v >= vis:
            raise ValueError("task_time_limit_seconds must be below visibility_timeout_seconds, "
                             "or Redis redelivers tasks that are still running")
        if soft >= v:
            raise ValueError("task_soft_time_limit_seconds must be below task_time_limit_seconds")
        return v
