"""The download side of a ``kadr enhance`` run: each entry's output brought home, fetched by
a thread, copied from its original's output for a duplicate, or failed with that original.

The threads only fetch into the run's private temporary folder and report
``("downloaded", rel, tmp, ext)`` or ``("download_failed", rel, err)`` on the run's queue;
placing a file under its output name and the bookkeeping happen on the main thread.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import requests

from client import entries
from client import state as st
from client.http import ApiError, Client, Unreachable
from client.interrupts import DeferredInterrupt
from client.shapes import Job, Message

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_EXT_BY_TYPE = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/bmp": "bmp", "image/tiff": "tif"}


class Downloads:
    def __init__(
        self,
        client: Client,
        state: st.State,
        by_item: dict[str, str],
        out: Path,
        tmp: Path,
        events: queue.Queue[Message],
        *,
        concurrency: int,
        interrupts: DeferredInterrupt,
    ) -> None:
        self.c, self.state, self.by_item = client, state, by_item
        self.out, self.tmp, self.q = out, tmp, events
        self.concurrency, self.interrupts = concurrency, interrupts
        self.todo: queue.Queue[tuple[str, str]] = queue.Queue()  # (entry, result link)
        self.inflight: set[str] = set()
        self._workers: list[threading.Thread] = []
        # Indexes, so that 10,000 photos cost no scan of every entry per event.
        self.dups: dict[str, set[str]] = {}
        for rel, e in state.inputs.items():
            if e.state == st.SKIPPED and e.duplicate_of:
                self.dups.setdefault(e.duplicate_of, set()).add(rel)
        self.taken = {e.output for e in state.inputs.values() if e.output}

    def start(self) -> None:
        if self._workers:
            return
        self._workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)]
        for w in self._workers:
            w.start()

    def after_item(self, rel: str) -> None:
        """Whatever the item's new state calls for: a download, a copy, a failure."""
        e = self.state.inputs[rel]
        if e.downloaded:
            return
        if e.state == st.SUCCEEDED and rel not in self.inflight:
            self.inflight.add(rel)
            self.todo.put((rel, entries.result_link(e)))
        elif e.state == st.SKIPPED:
            if e.duplicate_of:
                self.dups.setdefault(e.duplicate_of, set()).add(rel)
            orig = self.by_item.get(e.duplicate_of) if e.duplicate_of else None
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
                self.after_item(other)

    def foreign_duplicates(self, rels: list[str], placed: Callable[[], None]) -> None:
        """Duplicates of items outside this run's batches: wait for the original, fetch it."""
        for rel in rels:
            e = self.state.inputs[rel]
            if e.resolved or e.state != st.SKIPPED or not e.duplicate_of:
                continue
            job: Job = {"state": None}
            while job.get("state") not in st.TERMINAL_STATES:
                job = self.c.get_json(f"/api/v1/jobs/{e.duplicate_of}", params={"wait": 30}, timeout=(5, 60))
            if job["state"] != st.SUCCEEDED:
                e.state, e.error = "failed", f"duplicate of job {e.duplicate_of}, which {job['state']}"
                continue
            tmp, resp = self.c.download(entries.result_link(e), self.tmp)
            self.place(rel, tmp, extension(resp))
            placed()

    # ---- files ---------------------------------------------------------------------

    def place(self, rel: str, tmp: Path, ext: str) -> None:
        e = self.state.inputs[rel]
        name = entries.output_name(st.shown(rel, e), ext, self.taken if not e.output else self.taken - {e.output})
        dest = self.out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, _FILE_MODE)  # temporary files are private; outputs are ordinary files
        with self.interrupts.critical():
            os.replace(tmp, dest)
            entries.mark_downloaded(e, name)
        self.taken.add(name)
        self._dependents(e.item_id, rel)

    def _copy(self, orig: str, rel: str) -> None:
        """A duplicate's output is the original's: copy the file rather than fetch it again."""
        output = self.state.inputs[orig].output
        assert output is not None, "copied from a downloaded original"
        src = self.out / output
        tmp = self.tmp / f"copy-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        shutil.copyfile(src, tmp)
        self.place(rel, tmp, src.suffix)

    def _worker(self) -> None:
        while True:
            rel, link = self.todo.get()
            try:
                tmp, resp = self.c.download(link, self.tmp)
                self.q.put(("downloaded", rel, str(tmp), extension(resp)))
            except (ApiError, Unreachable, OSError) as e:  # OSError covers requests' errors
                self.q.put(("download_failed", rel, e))


def extension(resp: requests.Response) -> str:
    """The result's extension, from its Content-Disposition name or else its Content-Type."""
    cd = resp.headers.get("Content-Disposition", "")
    m = re.search(r"filename\*=UTF-8''([^;]+)", cd, re.I) or re.search(r'filename="?([^";]+)"?', cd)
    if m:
        suffix = Path(unquote(m.group(1).strip())).suffix
        if suffix:
            return suffix.lstrip(".").lower()
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return _EXT_BY_TYPE.get(ctype, "")
