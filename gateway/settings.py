"""Settings of the gateway process: the shared ones plus what only the web tier needs."""
from __future__ import annotations

from pydantic import Field

from services.common.settings import MIB, Settings


class GatewaySettings(Settings):
    # Whole request body (a batch of files); nginx's client_max_body_size is rendered
    # from the same value so both answer 413 at the same size.
    max_request_bytes: int = 200 * MIB
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
