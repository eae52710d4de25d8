"""kadr settings: one object per process, read from ``KADR_*`` environment variables.

``Settings`` holds what every process reads; the groups below it hold what two or more
processes must agree on (a photo's limits: the gateway refuses what the enhance worker
could not do). Each process's own class (``gateway/settings.py``,
``services/runtime/settings.py`` for the worker side, ``services/<svc>/settings.py``)
takes the groups it reads and adds its own fields, so a process holds only its own. Each
limit has a matching 4xx/503 answer, a log line and a counter where it bites.
Entrypoints build the object once and pass it down; tests build their own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KIB = 1024
MIB = 1024 * KIB


class CameraConfig(BaseModel):
    """One camera (``KADR_CAMERAS`` is a JSON list of these). The secret signs its
    webhooks ("hmac") or is the token it sends ("token"); it is never shown by the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    # rtsp://… (H.264 packets kept), http(s)://… MJPEG, or a video file (tests, demos);
    # empty: no buffer, the camera only uploads its own images.
    source: str = ""
    fps: float = Field(10.0, gt=0, le=60, description="frames kept per second")
    buffer_seconds: float = Field(10.0, gt=0, le=120)
    buffer_max_bytes: int = Field(128 * 1024 * 1024, gt=0)
    offsets: list[float] = Field(default_factory=lambda: [2.0, 3.0, 4.0], min_length=1, max_length=20)
    # The event clip (an MP4 of the buffer around the event): seconds before and after
    # the event time; 0 and 0: no clip. Both must fit the buffer together, as the
    # "after" part is waited for while the "before" part ages in the ring.
    clip_before_seconds: float = Field(5.0, ge=0, le=120)
    clip_after_seconds: float = Field(3.0, ge=0, le=60)
    auth: Literal["hmac", "token"] = "hmac"
    secret: SecretStr
    webhook_url: str | None = None

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == "events":
            raise ValueError("'events' is reserved (it is the events API path)")
        return v

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("a camera secret needs at least 16 characters")
        return v

    @model_validator(mode="after")
    def _offsets_in_buffer(self) -> CameraConfig:
        for off in self.offsets:
            if not (math.isfinite(off) and 0 <= off <= self.buffer_seconds):
                raise ValueError(f"offset {off} s is outside the {self.buffer_seconds} s buffer")
        asked = {"clip_before_seconds", "clip_after_seconds"} & self.model_fields_set
        if asked and self.clip_before_seconds + self.clip_after_seconds > self.buffer_seconds:
            raise ValueError(
                f"clip_before_seconds + clip_after_seconds ({self.clip_before_seconds} + "
                f"{self.clip_after_seconds} s) must fit the {self.buffer_seconds} s buffer"
            )
        return self

    def clip_window(self) -> tuple[float, float]:
        """(before, after) seconds of the event clip. The defaults shrink "before" to fit
        a short buffer instead of refusing a configuration that never asked for a clip."""
        after = min(self.clip_after_seconds, self.buffer_seconds)
        return min(self.clip_before_seconds, self.buffer_seconds - after), after


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` as its credentials, unless it already carries some."""
    parts = urlsplit(url)
    if parts.password or not password:
        return url
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname or ''}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


class Settings(BaseSettings):
    """What every kadr process reads."""

    model_config = SettingsConfigDict(env_prefix="KADR_", extra="forbid", frozen=True)

    # Where things live
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A file holding Redis's password (a compose secret, var/secrets/redis_password under
    # `make up`): put into every ``*redis_url`` field the process has, so the password is in
    # no environment variable.
    redis_password_file: Path | None = None
    storage_dir: Path = Path("var/blobs")
    log_level: str = "INFO"

    # Jobs: a finished record (and its files) lives this long unless retention says less.
    job_ttl_seconds: int = 7 * 24 * 3600

    # Celery / reliability: the gateway's messages carry these limits, workers apply them.
    visibility_timeout_seconds: int = 3600
    task_soft_time_limit_seconds: int = 600
    task_time_limit_seconds: int = 900
    max_deliveries: int = 3  # starts of one task (a worker death counts as one) before `worker_lost`

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        path = data.get("redis_password_file") if isinstance(data, dict) else None
        if path:
            password = Path(path).read_text().strip()
            for field, info in cls.model_fields.items():
                if field.endswith("redis_url"):
                    data[field] = with_password(data.get(field) or info.default, password)
        return data

    @field_validator("storage_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # Never resolved against whatever directory a worker happens to start in later.
        return v.expanduser().resolve()

    @model_validator(mode="after")
    def _limits_below_visibility(self) -> Settings:
        vis, soft, hard = (
            self.visibility_timeout_seconds,
            self.task_soft_time_limit_seconds,
            self.task_time_limit_seconds,
        )
        if hard >= vis:
            raise ValueError(
                "task_time_limit_seconds must be below visibility_timeout_seconds, "
                "or Redis redelivers tasks that are still running"
            )
        if soft >= hard:
            raise ValueError("task_soft_time_limit_seconds must be below task_time_limit_seconds")
        return self


class PhotoSettings(Settings):
    """A photo's limits: the gateway refuses and plans with them, the enhance worker works
    within them."""

    max_image_pixels: int = 40_000_000
    # The largest result (input pixels x upscale^2) a request may ask for; past it the
    # upload is refused at once with the largest upscale that fits.
    max_output_pixels: int = Field(100_000_000, ge=1)
    # Working memory one photo may take in an enhance process on top of its idle size
    # (models loaded): tiles, the detector's copy and the encoder's strips are sized from
    # it. The gateway reads it too: WebP results (encoded whole) must fit it.
    enhance_memory_budget_bytes: int = Field(400 * MIB, ge=64 * MIB)
    # A photo's time limits scale with its estimate (factor x its worst case, at most the
    # cap), so a large photo is never killed for its size and a stuck one is.
    photo_time_limit_factor: float = Field(3.0, ge=1.0)
    photo_time_limit_cap_seconds: int = Field(3000, ge=1)

    @model_validator(mode="after")
    def _cap_below_visibility(self) -> PhotoSettings:
        cap, vis = self.photo_time_limit_cap_seconds, self.visibility_timeout_seconds
        if cap < self.task_soft_time_limit_seconds:
            raise ValueError("photo_time_limit_cap_seconds must be at least task_soft_time_limit_seconds")
        if cap + (self.task_time_limit_seconds - self.task_soft_time_limit_seconds) >= vis:
            raise ValueError(
                "photo_time_limit_cap_seconds plus the grace between the soft and hard limits "
                "must be below visibility_timeout_seconds, or Redis redelivers photos still running"
            )
        return self


class BatchSettings(Settings):
    """The batch feeder's window, run by the gateway and by the enhance and segment pool
    processes alike."""

    # Items handed to the queue at a time per batch; a queued item that has not started
    # after this long is sent again (a crash lost its message).
    batch_window: int = Field(16, ge=1, le=1000)
    batch_redispatch_seconds: float = Field(300.0, gt=0)
    max_queue_backlog: int = 1000  # per queue; past it new work gets 503 + Retry-After


class VideoSettings(Settings):
    """A video's limits: checked by the gateway at upload, again by the segment worker."""

    max_video_bytes: int = 500 * MIB
    max_video_seconds: float = 600.0
    max_video_frames: int = 3000
    max_video_width: int = 3840
    max_video_height: int = 2160


class RetentionSettings(Settings):
    """Retention (services/upkeep/retention.py, run by the janitor; the gateway reports it
    in /usage): each kind is removed its TTL after its work ended (a batch: its own
    ttl_seconds, else job_ttl_seconds); past the budget the oldest finished thing goes
    first, whatever its kind (0: no budget). Nothing running or queued is ever removed."""

    storage_budget_bytes: int = Field(0, ge=0)
    retention_photos_seconds: int = Field(7 * 24 * 3600, ge=60)
    retention_videos_seconds: int = Field(7 * 24 * 3600, ge=60)
    retention_events_seconds: int = Field(7 * 24 * 3600, ge=60)
    # A folder without a record (an upload whose record never came) waits this long.
    retention_orphan_grace_seconds: float = Field(3600.0, ge=0)
    # Free space kept on the blob store's disk: below it uploads and camera webhooks get
    # 507 storage_full; work already accepted still finishes into the rest (0: no floor).
    storage_free_floor_bytes: int = Field(512 * MIB, ge=0)


class CallbackSettings(Settings):
    """Completion callbacks (callback_url on photos, videos, batches) and camera webhooks:
    checked by the gateway at creation, delivered from the outbox by the janitor
    (services/upkeep/delivery.py). Private, loopback and link-local destinations are
    refused unless their network is listed."""

    callback_allow_networks: list[str] = []
    callback_attempts: int = Field(8, ge=1, le=20)
    callback_backoff_seconds: float = Field(5.0, gt=0)  # doubled after each failed attempt
    callback_timeout_seconds: float = Field(10.0, gt=0)
    # Keys' callback secrets derive from it; unset: one is made and kept in Redis.
    callback_signing_key: SecretStr | None = None

    @field_validator("callback_allow_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
        return v


class CameraListSettings(Settings):
    """The cameras (JSON list in KADR_CAMERAS): the gateway checks their webhooks, the
    camera worker reads their streams."""

    cameras: list[CameraConfig] = []

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, v: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in v]
        if len(ids) != len(set(ids)):
            raise ValueError("camera ids must be unique")
        return v

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.id == camera_id), None)
