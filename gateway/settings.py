"""Settings of the gateway process: the shared ones plus what only the web tier needs."""
from __future__ import annotations

from services.common.settings import MIB, Settings


class GatewaySettings(Settings):
    # Whole request body (a batch of files); nginx's client_max_body_size is rendered
    # from the same value so both answer 413 at the same size.
    max_request_bytes: int = 200 * MIB
    # Queues that must have a live worker for /readyz to say ready.
    required_queues: list[str] = ["enhance", "segment", "camera"]
    backlog_retry_after_seconds: int = 30
    page_size_max: int = 500
    # One SSE stream holds a gunicorn thread this long at most; browsers reconnect by themselves.
    sse_max_seconds: float = 300.0
