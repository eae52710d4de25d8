"""One ``kadr enhance`` run: upload files into a batch and bring each result home as soon
as it exists, keeping the resume state up to date.

Threads do the waiting (uploads, downloads, the event stream) and report through one
queue; only the main thread touches the state, so the bookkeeping needs no locks and a
Ctrl-C always lands between two whole steps. Each side has its module: ``uploads.py``,
``downloads.py`` (placing outputs, duplicates' copies), ``batch_events.py``, and
``batch_setup.py`` picks the batch; this one holds the main loop, listing and polling.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from client import entries
from client import state as st
from client.batch_events import BatchEvents
from client.batch_setup import create_batch, open_batch
from client.downloads import Downloads
from client.http import ApiError, Client
from client.interrupts import DeferredInterrupt
from client.progress import Progress
from client.shapes import Batch, Item, ItemsPage, Message
from client.sse import Event
from client.uploads import Uploads

TERMINAL_BATCH = {"succeeded", "partial", "failed", "canceled"}
TMP_DIR = ".kadr-tmp"


class Fatal(Exception):
    """The run cannot go on; the message says what to do."""


class BatchRun:
    def __init__(
        self,
        client: Client,
        state: st.State,
        state_path: Path,
        files: dict[str, Path],
        out_dir: Path,
        *,
        concurrency: int,
        progress: Progress,
        kind: str = "enhance",
        batch_name: str | None = None,
        poll_interval: float = 2.0,
        log: Callable[[str], object] = print,
    ) -> None:
        self.c, self.state, self.state_path = client, state, state_path
        self.files, self.out = files, Path(out_dir)
        self.rels = list(files)
        self.concurrency, self.progress = concurrency, progress
        self.kind, self.batch_name = kind, batch_name
        self.poll_interval, self.log = poll_interval, log
        self.tmp = self.out / TMP_DIR
        self.q: queue.Queue[Message] = queue.Queue()
        self.by_item = state.by_item()  # shared with uploads and downloads: updated in place
        self.eta: float | None = None
        self.note = ""
        self.interrupts = DeferredInterrupt()
        self._saved_at = self._save_cost = self._refreshed_at = 0.0
        self.downloads = Downloads(
            client, state, self.by_item, self.out, self.tmp, self.q, concurrency=concurrency, interrupts=self.interrupts
        )
        self.uploads = Uploads(
            client, state, files, self.by_item, self.q, concurrency=concurrency, after_item=self.downloads.after_item
        )
        self.events = BatchEvents(client, self.q)

    # ---- the run -------------------------------------------------------------------

    def run(self) -> entries.Summary:
        shutil.rmtree(self.tmp, ignore_errors=True)  # leftovers of a run that was stopped
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.interrupts.install()
        try:
            current = open_batch(self.c, self.state, self.by_item, self.log)
            p = entries.plan(self.state, self.rels, self.out)
            self._refresh(force=True)
            older = {self.state.inputs[r].batch_id for r in p.watch} - {current}
            for bid in sorted(b for b in older if b is not None):
                self._drain(bid, [], close=False)
            if p.upload or current:
                if current is None:
                    current = create_batch(self.c, self.state, self.kind, self.batch_name)
                    self.save()
                self._drain(current, p.upload, close=True)
            self.downloads.foreign_duplicates(self.rels, lambda: self._refresh(force=True))
        finally:
            self.interrupts.uninstall()
            self.save()
            self._refresh(force=True)
        self.cleanup()
        return entries.summarize(self.state, self.rels)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def save(self) -> None:
        t = time.monotonic()
        st.save(self.state, self.state_path)
        self._saved_at = time.monotonic()
        self._save_cost = self._saved_at - t

    def _maybe_save(self) -> None:
        # A big state file is not rewritten more than ~5 % of the time.
        if time.monotonic() - self._saved_at > max(2.0, 20 * self._save_cost):
            self.save()

    def _drain(self, bid: str, uploads: list[str], *, close: bool) -> None:
        """Upload ``uploads`` into ``bid``, close it, and wait until every photo of ours in
        it is downloaded or failed."""
        watched = {r for r in self.rels if self.state.inputs[r].batch_id == bid} | set(uploads)
        stop = threading.Event()
        self.uploads.start(bid, uploads, stop)
        self.downloads.start()
        self.events.start(bid, stop)
        self._reconcile(bid)  # items that ended before the stream opened send no event
        closed, polling, next_poll = not close, False, 0.0
        try:
            while True:
                if not closed and self.uploads.left == 0:
                    self.c.post_json(f"/api/v1/batches/{bid}/close")
                    closed = True
                if (
                    closed
                    and not self.downloads.inflight
                    and self.q.empty()
                    and all(self._settled(r, bid) for r in watched)
                ):
                    return
                try:
                    msg = self.q.get(timeout=0.5)
                except queue.Empty:
                    msg = None
                if msg is not None:
                    polling = self._handle(bid, msg) or polling
                if polling and closed and time.monotonic() >= next_poll:
                    self._poll(bid, watched)
                    next_poll = time.monotonic() + self.poll_interval
                elif polling and time.monotonic() >= next_poll:
                    self._reconcile(bid, "succeeded")
                    next_poll = time.monotonic() + self.poll_interval
                if self.q.empty():
                    self._refresh()
                    self._maybe_save()
        finally:
            stop.set()
            self.uploads.stop()
            self.events.close()

    # ---- messages from the threads -------------------------------------------------

    def _handle(self, bid: str, msg: Message) -> bool:
        """Apply one message; True when the event stream is gone and polling must take over."""
        if msg[0] == "fatal":
            raise Fatal(msg[1])
        if msg[0] == "uploaded":
            _, rel, body = msg
            self.uploads.uploaded(bid, rel, body)
        elif msg[0] == "rejected":
            _, rel, refused = msg
            self.uploads.rejected(rel, refused)
        elif msg[0] == "event":
            return self._event(bid, msg[1])
        elif msg[0] == "stream_reopened":
            self._reconcile(bid)  # events sent between two streams are not replayed
        elif msg[0] == "stream_closed":
            _, broken = msg
            if broken is not None:
                self.note = "polling"
            return True
        elif msg[0] == "downloaded":
            _, rel, tmp, ext = msg
            self.downloads.inflight.discard(rel)
            self.downloads.place(rel, Path(tmp), ext)
        elif msg[0] == "download_failed":
            _, rel, err = msg
            self.downloads.inflight.discard(rel)
            e = self.state.inputs[rel]
            if isinstance(err, ApiError) and err.status in (404, 410):
                e.state, e.error = "failed", f"{err.code}: {err.message}"
                self.downloads.after_item(rel)
            elif isinstance(err, ApiError) and err.status == 409:
                pass  # not ready after all: the next listing brings it back
            else:
                raise Fatal(f"downloading the result of {rel} failed: {err}")
        return False

    def _event(self, bid: str, ev: Event) -> bool:
        if ev.event == "item":
            self._item(ev.json())
        elif ev.event == "progress":
            self._batch_seen(ev.json())
        elif ev.event == "end":
            self._reconcile(bid)
        return False

    def _item(self, item: Item) -> None:
        rel = self.by_item.get(item.get("id"))
        if rel is not None:
            entries.record_item(self.state.inputs[rel], item)
            self.downloads.after_item(rel)

    def _batch_seen(self, batch: Batch) -> None:
        self.eta = batch.get("eta_seconds")
        running = batch.get("running") or []
        if batch.get("paused") or batch.get("state") == "paused":
            self.note = "paused"
        elif running:
            # A 24 MP photo takes minutes: say how far the ones in the works are.
            shares = ", ".join(f"{r['progress']:.0%}" for r in running[:4])
            self.note = f"{len(running)} in progress ({shares}{', ...' if len(running) > 4 else ''})"
        else:
            self.note = ""
        self._refresh()

    def _settled(self, rel: str, bid: str) -> bool:
        """Nothing more to wait for from this batch (a duplicate of an item elsewhere is
        fetched after the batches are done)."""
        e = self.state.inputs[rel]
        if e.resolved:
            return True
        if e.state == st.SKIPPED:
            orig = self.by_item.get(e.duplicate_of) if e.duplicate_of else None
            return orig is None or self.state.inputs[orig].batch_id != bid
        return False

    # ---- listing and polling -------------------------------------------------------

    def _reconcile(self, bid: str, state: str | None = None) -> None:
        offset: int | None = 0
        while offset is not None:
            params: dict[str, int | str] = {"offset": offset, "limit": 1000}
            if state:
                params["state"] = state
            page: ItemsPage = self.c.get_json(f"/api/v1/batches/{bid}/items", params=params)
            for item in page.get("items", []):
                self._item(item)
            offset = page.get("next_offset")

    def _poll(self, bid: str, watched: set[str]) -> None:
        batch: Batch = self.c.get_json(f"/api/v1/batches/{bid}", params={"limit": 0})
        self._batch_seen(batch)
        if batch.get("state") not in TERMINAL_BATCH or batch.get("open"):
            self._reconcile(bid, "succeeded")
            return
        self._reconcile(bid)
        for rel in watched:
            e = self.state.inputs[rel]
            if not self._settled(rel, bid) and rel not in self.downloads.inflight and e.state != st.SUCCEEDED:
                # The batch is over; an item it never finished will not finish now.
                e.error = e.error or f"the batch ended with this item {e.state or 'unknown'}"
                e.state = "failed"
                self.downloads.after_item(rel)

    # ---- progress ------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed_at < 0.3:
            return
        self._refreshed_at = time.monotonic()
        done = sum(1 for r in self.rels if self.state.inputs[r].downloaded)
        failed = sum(1 for r in self.rels if self.state.inputs[r].failed)
        self.progress.update(done, failed, self.eta, self.note)
