"""Ctrl-C that waits for the end of a step that must not be cut in two."""
from __future__ import annotations

import contextlib
import signal
import threading


class DeferredInterrupt:
    """SIGINT raises KeyboardInterrupt only outside ``critical()``: an output renamed into
    place is always recorded as downloaded before the run stops."""

    def __init__(self):
        self.depth, self.pending, self.previous = 0, False, None

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def uninstall(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handler(self, signum, frame):
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt
