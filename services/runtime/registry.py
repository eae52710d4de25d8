"""Model registry: the only module-level mutable state in kadr.

Each worker process loads each model once (warm-up at process start, in a thread so
the pool's start-up handshake is not held up) and serves every task with it. Loading is
lazy and locked, so a task that arrives during warm-up waits for the same load instead
of starting a second one. Model objects such as GFPGANer keep per-call state, so
``use()`` also serialises callers of one instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from services.contracts.model_states import FAILED, LOADING, MISSING_WEIGHTS, NOT_LOADED, READY
from services.platform.metrics import MODEL_LOAD_SECONDS


class ModelUnavailable(RuntimeError):
    def __init__(self, name: str, state: str, message: str):
        super().__init__(f"model {name} is {state}: {message}")
        self.name, self.state, self.message = name, state, message


class MissingWeightsError(RuntimeError):
    """Raised by a loader whose weight files are absent."""


@dataclass
class _Entry:
    loader: Callable[[], Any]
    version: str
    check_files: Callable[[], list[str]]
    state: str = NOT_LOADED
    message: str = ""
    load_seconds: float | None = None
    instance: Any = None
    load_lock: threading.Lock = field(default_factory=threading.Lock)
    use_lock: threading.RLock = field(default_factory=threading.RLock)


class ModelRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self, name: str, loader: Callable[[], Any], *, version: str, check_files: Callable[[], list[str]] = lambda: []
    ) -> None:
        """``check_files`` returns the missing weight file names (cheap: no loading)."""
        self._entries[name] = _Entry(loader=loader, version=version, check_files=check_files)

    def names(self) -> list[str]:
        return list(self._entries)

    def version(self, name: str) -> str:
        return self._entries[name].version

    def _load(self, name: str) -> _Entry:
        e = self._entries[name]
        if e.state == READY:
            return e
        with e.load_lock:
            if e.state == READY:
                return e
            missing = e.check_files()
            if missing:
                e.state, e.message = MISSING_WEIGHTS, "missing: " + ", ".join(missing)
                raise ModelUnavailable(name, e.state, e.message + " (run `kadr models download`)")
            e.state, e.message = LOADING, ""
            t0 = time.perf_counter()
            try:
                e.instance = e.loader()
            except MissingWeightsError as exc:
                e.state, e.message = MISSING_WEIGHTS, str(exc)
                raise ModelUnavailable(name, e.state, e.message) from exc
            except Exception as exc:  # the state must say why, not just "failed"
                e.state, e.message = FAILED, f"{type(exc).__name__}: {exc}"
                raise ModelUnavailable(name, e.state, e.message) from exc
            e.load_seconds = round(time.perf_counter() - t0, 3)
            MODEL_LOAD_SECONDS.labels(model=name).observe(e.load_seconds)
            e.state = READY
            return e

    def get(self, name: str) -> Any:
        return self._load(name).instance

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        e = self._load(name)
        with e.use_lock:
            yield e.instance

    def announce_warm_up(self, names: list[str]) -> None:
        """Mark models about to be warmed as ``loading`` before the first heartbeat, so
        readiness never sees them as merely lazy (``not_loaded``) and reports ready early."""
        for name in names:
            e = self._entries.get(name)
            if e is not None and e.state == NOT_LOADED and not e.check_files():
                e.state, e.message = LOADING, "warming up"

    def warm_up(self, names: list[str] | None = None) -> None:
        for name in names or self.names():
            try:
                self._load(name)
            except ModelUnavailable:
                pass  # the state records it; readiness reports it

    def states(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, e in self._entries.items():
            state = e.state
            message = e.message
            if state == NOT_LOADED:
                missing = e.check_files()
                if missing:
                    state, message = MISSING_WEIGHTS, "missing: " + ", ".join(missing)
            out[name] = {"state": state, "message": message, "version": e.version, "load_seconds": e.load_seconds}
        return out


registry = ModelRegistry()
