"""The event stream of one batch, followed by a thread that feeds the run's queue:
``("event", ev)`` for each event, ``("stream_reopened",)`` when the server ended a stream
and a new one is open, ``("stream_closed", err)`` at the batch's end (``err`` None) or
when the stream broke (the main thread polls instead)."""

from __future__ import annotations

import contextlib
import queue
import threading

import requests

from client.http import Client
from client.shapes import Message


class BatchEvents:
    def __init__(self, client: Client, events: queue.Queue[Message]) -> None:
        self.c, self.q = client, events
        self._responses: list[requests.Response] = []

    def start(self, bid: str, stop: threading.Event) -> None:
        self._responses = []
        threading.Thread(target=self._follow, args=(bid, stop, self._responses), daemon=True).start()

    def close(self) -> None:
        """Close the open streams (the caller has set the ``stop`` event)."""
        for r in self._responses:
            with contextlib.suppress(Exception):
                r.close()

    def _follow(self, bid: str, stop: threading.Event, holder: list[requests.Response]) -> None:
        """Feed the batch's events to the main thread. The server ends a stream after a
        while (it holds a thread): open a new one. A broken stream means trouble (a
        restart): report it, and the main thread polls instead."""
        while not stop.is_set():
            try:
                for ev in self.c.events(f"/api/v1/batches/{bid}/events", on_open=holder.append):
                    if stop.is_set():
                        return
                    self.q.put(("event", ev))
                    if ev.event == "end":
                        self.q.put(("stream_closed", None))
                        return
            except Exception as e:  # noqa: BLE001 - any break means: poll
                if not stop.is_set():
                    self.q.put(("stream_closed", e))
                return
            if stop.wait(1.0):
                return
            self.q.put(("stream_reopened",))
