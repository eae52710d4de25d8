"""The state of one model in one worker process, as its heartbeat reports it and the
gateway's ``/readyz`` reads it (the architecture's missing weights / loading / ready /
failed; ``not_loaded`` until the warm-up or a first task asks for it)."""

from __future__ import annotations

MISSING_WEIGHTS = "missing_weights"
NOT_LOADED = "not_loaded"
LOADING = "loading"
READY = "ready"
FAILED = "failed"
