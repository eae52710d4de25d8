"""The upload side of a ``kadr enhance`` run: each photo sent once into a batch, and what
the server answered recorded on every entry that photo feeds (one per variant).

The threads never read the resume state: they get (entry, name to send) pairs and put
``("uploaded", rel, body)``, ``("rejected", rel, ApiError)`` or ``("fatal", message)`` on
the run's queue; the main thread hands those to ``uploaded`` and ``rejected``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

import requests

from client import entries
from client import state as st
from client.http import ApiError, Client, Unreachable
from client.shapes import Message, UploadAnswer


class Uploads:
    def __init__(
        self,
        client: Client,
        state: st.State,
        files: dict[str, Path],
        by_item: dict[str, str],
        events: queue.Queue[Message],
        *,
        concurrency: int,
        after_item: Callable[[str], None],
    ) -> None:
        self.c, self.state, self.files, self.by_item = client, state, files, by_item
        self.q, self.concurrency, self.after_item = events, concurrency, after_item
        self.left = 0  # uploads of the current batch not answered yet
        self._todo: queue.Queue[tuple[str, str] | None] = queue.Queue()  # (entry, name to send)
        self._workers: list[threading.Thread] = []
        # With variants one upload feeds every variant's entry of that photo.
        self.siblings: dict[str, list[str]] = {}
        for key in files:
            self.siblings.setdefault(st.source(key, state.inputs[key]), []).append(key)

    def start(self, bid: str, uploads: list[str], stop: threading.Event) -> None:
        """Upload the photos of the entries ``uploads`` into batch ``bid``."""
        first: dict[str, str] = {}  # one upload per photo feeds all its variants' entries
        for k in uploads:
            first.setdefault(st.source(k, self.state.inputs[k]), k)
        sends = list(first.values())
        self.left = len(sends)
        self._todo = queue.Queue()
        for rel in sends:  # (entry, the file's name to send); threads do not read the state
            self._todo.put((rel, st.source(rel, self.state.inputs[rel])))
        self._workers = [
            threading.Thread(target=self._worker, args=(bid, stop), daemon=True)
            for _ in range(min(self.concurrency, len(sends)))
        ]
        for w in self._workers:
            w.start()

    def stop(self) -> None:
        """Wake every worker so that it ends (the caller has set the ``stop`` event)."""
        for _ in self._workers:
            self._todo.put(None)

    # ---- on the main thread: an answer recorded on the entries -----------------------

    def uploaded(self, bid: str, rel: str, body: UploadAnswer) -> None:
        self.left -= 1
        accepted = body.get("accepted") or []
        for key in self._outputs_of(rel):
            e = self.state.inputs[key]
            item = next(
                (a for a in accepted if a.get("variant") in ((e.variant,) if e.variant else (None, "default"))),
                None if e.variant else (accepted[0] if accepted else None),
            )
            if item is None:
                rej = (body.get("rejected") or [{}])[0]
                entries.record_rejected(
                    e,
                    rej.get("code", "rejected"),
                    rej.get("message", f"the server made no {e.variant or 'default'} output"),
                )
            else:
                entries.record_accepted(e, bid, item)
                self.by_item[item["id"]] = key
            self.after_item(key)

    def rejected(self, rel: str, err: ApiError) -> None:
        self.left -= 1
        code, message = refusal(err)
        for key in self._outputs_of(rel):
            entries.record_rejected(self.state.inputs[key], code, message)
            self.after_item(key)

    def _outputs_of(self, key: str) -> list[str]:
        return self.siblings.get(st.source(key, self.state.inputs[key]), [key])

    def _worker(self, bid: str, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job = self._todo.get_nowait()
            except queue.Empty:
                return
            if job is None:
                return
            rel, name = job
            try:
                body = self.c.upload(f"/api/v1/batches/{bid}/items", "files", self.files[rel], name)
                self.q.put(("uploaded", rel, body))
            except ApiError as e:
                if e.status == 409 or e.status in (401, 403, 404):
                    self.q.put(("fatal", upload_refusal(bid, e)))
                    return
                self.q.put(("rejected", rel, e))
            except (Unreachable, requests.RequestException) as e:
                self.q.put(("fatal", f"uploading {name}: {e}"))
                return
            except OSError as e:  # the file itself: unreadable, vanished
                self.q.put(("rejected", rel, ApiError(0, "unreadable", str(e))))


def upload_refusal(bid: str, e: ApiError) -> str:
    """Why no upload into ``bid`` can go on, for a refusal of the whole batch or key."""
    if e.status == 409:
        return (
            f"batch {bid} no longer takes photos ({e.message}); run the same command again to continue in a new batch"
        )
    return f"the server refused the upload: {e.message} ({e.code})"


def refusal(err: ApiError) -> tuple[str, str]:
    """A one-file upload refused whole: the file's own reason sits in the details."""
    details = err.details if isinstance(err.details, list) else []
    first = details[0] if len(details) == 1 and isinstance(details[0], dict) else {}
    message = first.get("message") or err.message
    name = first.get("name")
    if name and message.startswith(f"{name}: "):
        message = message[len(name) + 2 :]  # the summary names the file already
    return first.get("code") or err.code, message
