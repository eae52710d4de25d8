"""One ``kadr enhance`` run: upload files into a batch and bring each result home as soon
as it exists, keeping the resume state up to date.

Threads do the waiting (uploads, downloads, the event stream) and report through one
queue; only the main thread touches the state, so the bookkeeping needs no locks and a
Ctrl-C always lands between two whole steps.
"""
from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import requests

from client import state as st
from client.http import ApiError, Client, Unreachable
from client.interrupts import DeferredInterrupt
from client.progress import Progress

TERMINAL_BATCH = {"succeeded", "partial", "failed", "canceled"}
TMP_DIR = ".kadr-tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_EXT_BY_TYPE = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
                "image/bmp": "bmp", "image/tiff": "tif"}


class Fatal(Exception):
    """The run cannot go on; the message says what to do."""


class BatchRun:
    def __init__(self, client: Client, state: st.State, state_path: Path, files: dict[str, Path],
                 out_dir: Path, *, concurrency: int, progress: Progress, kind: str = "enhance",
                 batch_name: str | None = None, poll_interval: float = 2.0, log=print):
        self.c, self.state, self.state_path = client, state, state_path
        self.files, self.out = files, Path(out_dir)
        self.rels = list(files)
        self.concurrency, self.progress = concurrency, progress
        self.kind, self.batch_name = kind, batch_name
        self.poll_interval, self.log = poll_interval, log
        self.tmp = self.out / TMP_DIR
        self.q: queue.Queue = queue.Queue()
        self.downloads: queue.Queue = queue.Queue()
        self.inflight: set[str] = set()
        self.by_item = state.by_item()
        self.eta: float | None = None
        self.note = ""
        self.interrupts = DeferredInterrupt()
        self._saved_at = self._save_cost = self._refreshed_at = 0.0
        # Indexes, so that 10,000 photos cost no scan of every entry per event.
        self.dups: dict[str, set[str]] = {}
        for rel, e in state.inputs.items():
            if e.state == st.SKIPPED and e.duplicate_of:
                self.dups.setdefault(e.duplicate_of, set()).add(rel)
        self.taken = {e.output for e in state.inputs.values() if e.output}
        # With variants one upload feeds every variant's entry of that photo.
        self.siblings: dict[str, list[str]] = {}
        for key in self.rels:
            self.siblings.setdefault(st.source(key, state.inputs[key]), []).append(key)

    # ---- the run -------------------------------------------------------------------

    def run(self) -> st.Summary:
        shutil.rmtree(self.tmp, ignore_errors=True)  # leftovers of a run that was stopped
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.interrupts.install()
        try:
            current = self._open_batch()
            p = st.plan(self.state, self.rels, self.out)
            self._refresh(force=True)
            older = {self.state.inputs[r].batch_id for r in p.watch} - {current, None}
            for bid in sorted(older):
                self._drain(bid, [], close=False)
            if p.upload or current:
                if current is None:
                    current = self._create_batch()
                self._drain(current, p.upload, close=True)
            self._foreign_duplicates()
        finally:
            self.interrupts.uninstall()
            self.save()
            self._refresh(force=True)
        self.cleanup()
        return st.summarize(self.state, self.rels)

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

    def _open_batch(self) -> str | None:
        """The state's batch if it still takes items; forget it if the server lost it."""
        bid = self.state.batch_id
        if not bid:
            return None
        try:
            batch = self.c.get_json(f"/api/v1/batches/{bid}", params={"limit": 0})
        except ApiError as e:
            if e.status != 404:
                raise
            self.log(f"batch {bid} is gone from the server; its photos go into a new batch")
            st.forget_batch(self.state, bid)
            self.by_item = self.state.by_item()
            return None
        return bid if batch.get("open") else None

    def _create_batch(self) -> str:
        body = {"kind": self.kind, "params": self.state.params}
        if self.state.variants:
            body["variants"] = self.state.variants
        if self.batch_name:
            body["name"] = self.batch_name
        # One key for every retry of this create: a lost answer does not leave a second batch.
        batch = self.c.post_json("/api/v1/batches", body, headers={"Idempotency-Key": uuid.uuid4().hex})
        self.state.batch_id = batch["id"]
        self.save()
        return batch["id"]

    def _drain(self, bid: str, uploads: list[str], *, close: bool) -> None:
        """Upload ``uploads`` into ``bid``, close it, and wait until every photo of ours in
        it is downloaded or failed."""
        watched = {r for r in self.rels if self.state.inputs[r].batch_id == bid} | set(uploads)
        first: dict[str, str] = {}  # one upload per photo feeds all its variants' entries
        for k in uploads:
            first.setdefault(st.source(k, self.state.inputs[k]), k)
        sends = list(first.values())
        self.uploads_left = len(sends)
        stop = threading.Event()
        workers = self._start_uploads(bid, sends, stop)
        self._start_downloads()
        sse_resp: list = []
        threading.Thread(target=self._follow_events, args=(bid, stop, sse_resp), daemon=True).start()
        self._reconcile(bid)  # items that ended before the stream opened send no event
        closed, polling, next_poll = not close, False, 0.0
        try:
            while True:
                if not closed and self.uploads_left == 0:
                    self.c.post_json(f"/api/v1/batches/{bid}/close")
                    closed = True
                if (closed and not self.inflight and self.q.empty()
                        and all(self._settled(r, bid) for r in watched)):
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
            for _ in workers:
                self._upload_q.put(None)
            for r in sse_resp:
                with contextlib.suppress(Exception):
                    r.close()

    # ---- messages from the threads -------------------------------------------------

    def _handle(self, bid: str, msg: tuple) -> bool:
        """Apply one message; True when the event stream is gone and polling must take over."""
        kind = msg[0]
        if kind == "fatal":
            raise msg[1]
        if kind == "uploaded":
            _, rel, body = msg
            self.uploads_left -= 1
            self._uploaded(bid, rel, body)
        elif kind == "rejected":
            _, rel, err = msg
            self.uploads_left -= 1
            code, message = _refusal(err)
            for key in self._outputs_of(rel):
                st.record_rejected(self.state.inputs[key], code, message)
                self._after_item(key)
        elif kind == "event":
            return self._event(bid, msg[1])
        elif kind == "stream_reopened":
            self._reconcile(bid)  # events sent between two streams are not replayed
        elif kind == "stream_closed":
            _, err = msg
            if err is not None:
                self.note = "polling"
            return True
        elif kind == "downloaded":
            _, rel, tmp, ext = msg
            self.inflight.discard(rel)
            self._place(rel, Path(tmp), ext)
        elif kind == "download_failed":
            _, rel, err = msg
            self.inflight.discard(rel)
            e = self.state.inputs[rel]
            if isinstance(err, ApiError) and err.status in (404, 410):
                e.state, e.error = "failed", f"{err.code}: {err.message}"
                self._after_item(rel)
            elif isinstance(err, ApiError) and err.status == 409:
                pass  # not ready after all: the next listing brings it back
            else:
                raise Fatal(f"downloading the result of {rel} failed: {err}")
        return False

    def _outputs_of(self, key: str) -> list[str]:
        return self.siblings.get(st.source(key, self.state.inputs[key]), [key])

    def _uploaded(self, bid: str, rel: str, body: dict) -> None:
        accepted = body.get("accepted") or []
        for key in self._outputs_of(rel):
            e = self.state.inputs[key]
            item = next((a for a in accepted if a.get("variant") in ((e.variant,) if e.variant else (None, "default"))),
                        None if e.variant else (accepted[0] if accepted else None))
            if item is None:
                rej = (body.get("rejected") or [{}])[0]
                st.record_rejected(e, rej.get("code", "rejected"),
                                   rej.get("message", f"the server made no {e.variant or 'default'} output"))
            else:
                st.record_accepted(e, bid, item)
                self.by_item[item["id"]] = key
            self._after_item(key)

    def _event(self, bid: str, ev) -> bool:
        if ev.event == "item":
            self._item(ev.json())
        elif ev.event == "progress":
            self._batch_seen(ev.json())
        elif ev.event == "end":
            self._reconcile(bid)
        return False

    def _item(self, item: dict) -> None:
        rel = self.by_item.get(item.get("id"))
        if rel is not None:
            st.record_item(self.state.inputs[rel], item)
            self._after_item(rel)

    def _batch_seen(self, batch: dict) -> None:
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

    def _after_item(self, rel: str) -> None:
        """Whatever the item's new state calls for: a download, a copy, a failure."""
        e = self.state.inputs[rel]
        if e.downloaded:
            return
        if e.state == st.SUCCEEDED and rel not in self.inflight:
            self.inflight.add(rel)
            self.downloads.put((rel, st.result_link(e)))
        elif e.state == st.SKIPPED:
            if e.duplicate_of:
                self.dups.setdefault(e.duplicate_of, set()).add(rel)
            orig = self.by_item.get(e.duplicate_of)
            if orig and self.state.inputs[orig].downloaded:
                self._copy(orig, rel)
            elif orig and self.state.inputs[orig].failed:
                e.state = "failed"
                e.error = f"duplicate of {orig}, which failed: {self.state.inputs[orig].error}"
        if e.resolved:
            self._dependents(e.item_id, rel)

    def _dependents(self, item_id: str | None, rel: str) -> None:
        for other in sorted(self.dups.get(item_id, ())) if item_id else ():
            if other != rel and self.state.inputs[other].state == st.SKIPPED:
                self._after_item(other)

    def _settled(self, rel: str, bid: str) -> bool:
        """Nothing more to wait for from this batch (a duplicate of an item elsewhere is
        fetched after the batches are done)."""
        e = self.state.inputs[rel]
        if e.resolved:
            return True
        if e.state == st.SKIPPED:
            orig = self.by_item.get(e.duplicate_of)
            return orig is None or self.state.inputs[orig].batch_id != bid
        return False

    # ---- listing and polling -------------------------------------------------------

    def _reconcile(self, bid: str, state: str | None = None) -> None:
        offset = 0
        while offset is not None:
            params = {"offset": offset, "limit": 1000}
            if state:
                params["state"] = state
            page = self.c.get_json(f"/api/v1/batches/{bid}/items", params=params)
            for item in page.get("items", []):
                self._item(item)
            offset = page.get("next_offset")

    def _poll(self, bid: str, watched: set[str]) -> None:
        batch = self.c.get_json(f"/api/v1/batches/{bid}", params={"limit": 0})
        self._batch_seen(batch)
        if batch.get("state") not in TERMINAL_BATCH or batch.get("open"):
            self._reconcile(bid, "succeeded")
            return
        self._reconcile(bid)
        for rel in watched:
            e = self.state.inputs[rel]
            if not self._settled(rel, bid) and rel not in self.inflight and e.state != st.SUCCEEDED:
                # The batch is over; an item it never finished will not finish now.
                e.error = e.error or f"the batch ended with this item {e.state or 'unknown'}"
                e.state = "failed"
                self._after_item(rel)

    def _foreign_duplicates(self) -> None:
        """Duplicates of items outside this run's batches: wait for the original, fetch it."""
        for rel in self.rels:
            e = self.state.inputs[rel]
            if e.resolved or e.state != st.SKIPPED or not e.duplicate_of:
                continue
            job = {"state": None}
            while job.get("state") not in st.TERMINAL_STATES:
                job = self.c.get_json(f"/api/v1/jobs/{e.duplicate_of}", params={"wait": 30},
                                      timeout=(5, 60))
            if job["state"] != st.SUCCEEDED:
                e.state, e.error = "failed", f"duplicate of job {e.duplicate_of}, which {job['state']}"
                continue
            tmp, resp = self.c.download(st.result_link(e), self.tmp)
            self._place(rel, tmp, _extension(resp))
            self._refresh(force=True)

    # ---- files ---------------------------------------------------------------------

    def _place(self, rel: str, tmp: Path, ext: str) -> None:
        e = self.state.inputs[rel]
        name = st.output_name(st.shown(rel, e), ext, self.taken if not e.output else self.taken - {e.output})
        dest = self.out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, _FILE_MODE)  # temporary files are private; outputs are ordinary files
        with self.interrupts.critical():
            os.replace(tmp, dest)
            st.mark_downloaded(e, name)
        self.taken.add(name)
        self._dependents(e.item_id, rel)

    def _copy(self, orig: str, rel: str) -> None:
        """A duplicate's output is the original's: copy the file rather than fetch it again."""
        src = self.out / self.state.inputs[orig].output
        tmp = self.tmp / f"copy-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        shutil.copyfile(src, tmp)
        self._place(rel, tmp, src.suffix)

    # ---- threads -------------------------------------------------------------------

    def _start_uploads(self, bid: str, rels: list[str], stop: threading.Event) -> list:
        self._upload_q: queue.Queue = queue.Queue()
        for rel in rels:  # (entry, the file's name to send); threads do not read the state
            self._upload_q.put((rel, st.source(rel, self.state.inputs[rel])))
        workers = [threading.Thread(target=self._upload_worker, args=(bid, stop), daemon=True)
                   for _ in range(min(self.concurrency, len(rels)))]
        for w in workers:
            w.start()
        return workers

    def _upload_worker(self, bid: str, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job = self._upload_q.get_nowait()
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
                    self.q.put(("fatal", Fatal(_upload_refusal(bid, e))))
                    return
                self.q.put(("rejected", rel, e))
            except (Unreachable, requests.RequestException) as e:
                self.q.put(("fatal", Fatal(f"uploading {name}: {e}")))
                return
            except OSError as e:  # the file itself: unreadable, vanished
                self.q.put(("rejected", rel, ApiError(0, "unreadable", str(e))))

    def _start_downloads(self) -> None:
        if getattr(self, "_download_workers", None):
            return
        self._download_workers = [threading.Thread(target=self._download_worker, daemon=True)
                                  for _ in range(self.concurrency)]
        for w in self._download_workers:
            w.start()

    def _download_worker(self) -> None:
        while True:
            rel, link = self.downloads.get()
            try:
                tmp, resp = self.c.download(link, self.tmp)
                self.q.put(("downloaded", rel, str(tmp), _extension(resp)))
            except (ApiError, Unreachable, OSError) as e:  # OSError covers requests' errors
                self.q.put(("download_failed", rel, e))

    def _follow_events(self, bid: str, stop: threading.Event, holder: list) -> None:
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

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed_at < 0.3:
            return
        self._refreshed_at = time.monotonic()
        done = sum(1 for r in self.rels if self.state.inputs[r].downloaded)
        failed = sum(1 for r in self.rels if self.state.inputs[r].failed)
        self.progress.update(done, failed, self.eta, self.note)


def _upload_refusal(bid: str, e: ApiError) -> str:
    if e.status == 409:
        return (f"batch {bid} no longer takes photos ({e.message}); run the same command "
                "again to continue in a new batch")
    return f"the server refused the upload: {e.message} ({e.code})"


def _extension(resp) -> str:
    cd = resp.headers.get("Content-Disposition", "")
    m = re.search(r"filename\*=UTF-8''([^;]+)", cd, re.I) or re.search(r'filename="?([^";]+)"?', cd)
    if m:
        suffix = Path(unquote(m.group(1).strip())).suffix
        if suffix:
            return suffix.lstrip(".").lower()
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return _EXT_BY_TYPE.get(ctype, "")


def _refusal(err: ApiError) -> tuple[str, str]:
    """A one-file upload refused whole: the file's own reason sits in the details."""
    details = err.details if isinstance(err.details, list) else []
    first = details[0] if len(details) == 1 and isinstance(details[0], dict) else {}
    message = first.get("message") or err.message
    name = first.get("name")
    if name and message.startswith(f"{name}: "):
        message = message[len(name) + 2:]  # the summary names the file already
    return first.get("code") or err.code, message
