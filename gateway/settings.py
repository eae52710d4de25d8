"""Settings of the gateway process: the groups it shares with the workers and ops, plus what
only the web tier needs."""

from __future__ import annotations

from pydantic import Field

from services.contracts.settings import (
    KIB,
    MIB,
    BatchSettings,
    CallbackSettings,
    CameraListSettings,
    PhotoSettings,
    RetentionSettings,
    VideoSettings,
)


class GatewaySettings(
    PhotoSettings, VideoSettings, BatchSettings, RetentionSettings, CallbackSettings, CameraListSettings
):
    auth_disabled: bool = False  # local development only; the gateway logs it loudly
    # Upload limits (each answered with a clear 4xx)
    max_upload_bytes: int = 50 * MIB
    max_batch_files: int = 20  # files in one request (POST /enhance/batch, /batches/{id}/items)
    # ZIP/TAR uploads into a batch, unpacked by the gateway
    archive_max_entries: int = Field(10_000, ge=1)
    archive_max_bytes: int = 4 * 1024 * MIB  # all entries, uncompressed
    archive_max_ratio: float = Field(100.0, gt=1)  # uncompressed / compressed, per entry
    # Defaults the gateway applies before sending a task
    enhance_default_quality: str = "medium"
    enhance_default_max_faces: int = 20
    segment_default_model: str = "lraspp_mobilenet_v3_large"
    segment_processing_size: int = 520
    # Camera webhooks: past the backlog the webhook answers 503
    camera_max_backlog: int = 200  # events waiting on the camera queue
    camera_retry_after_seconds: int = 5
    camera_max_event_bytes: int = 20 * MIB  # one webhook request, images included
    camera_replay_window_seconds: int = 300
    # Whole request body (a batch of files); nginx's client_max_body_size is rendered
    # from the same value so both answer 413 at the same size.
    max_request_bytes: int = 200 * MIB
    # A JSON body (batch specs, stabilize requests, camera events sent as JSON): parsed
    # whole in memory, so it is held far below the request limit (413 payload_too_large).
    max_json_bytes: int = Field(1 * MIB, ge=1024)
    # Queues that must have a live worker for /readyz to say ready.
    required_queues: list[str] = ["enhance", "segment", "camera"]
    backlog_retry_after_seconds: int = 30
    page_size_max: int = 500
    # One SSE stream lasts this long at most; browsers reconnect by themselves.
    sse_max_seconds: float = 300.0
    # Open SSE streams and ?wait= long polls: per key across the gateway (429
    # too_many_streams past it) and per gateway process (503 server_busy + Retry-After;
    # keep it under the process's file descriptors: one socket each, plus nginx's two).
    max_streams_per_key: int = Field(100, ge=1)
    max_open_streams: int = Field(4000, ge=1)
    # Per-key quotas, so one key cannot take Redis or the workers from the others, each
    # answered with a code naming it. Items: photos x variants. In flight: not yet ended
    # (pending, queued, running), single photos, videos and batch items together. Open
    # batches: not yet ended (open, or closed with items left). An item's records take
    # ~3 KB of Redis (measured): 20,000 in flight are ~60 MB.
    max_batch_items: int = Field(100_000, ge=1)  # 413 too_many_items
    max_items_in_flight_per_key: int = Field(20_000, ge=1)  # 429 too_many_in_flight
    max_open_batches_per_key: int = Field(20, ge=1)  # 429 too_many_open_batches
    max_result_sets_per_video: int = Field(20, ge=1)  # 409 too_many_result_sets
    # A camera event's own fields (boxes, plate, extra metadata), kept in Redis with it.
    camera_max_event_fields_bytes: int = Field(16 * KIB, ge=256)  # 413 event_too_large
    # Redis runs noeviction: a write that would take it past this share of its maxmemory
    # is refused (507 storage_full) while reads, cancels and deletes keep the rest.
    redis_high_water: float = Field(0.9, gt=0, le=1)
    redis_memory_check_seconds: float = Field(1.0, ge=0)  # how old a used-memory reading may be
    # ?format= conversions in the gateway (decoded whole): larger images are served as
    # stored only (413 too_large_to_convert). 12 MP is ~36 MB of pixels, ~110 MB at peak.
    max_convert_pixels: int = Field(12_000_000, ge=1)
