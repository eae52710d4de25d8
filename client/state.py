"""The local resume state of ``kadr enhance``: which input became which server item, and
whether its output is already on disk.

Pure bookkeeping on plain data plus an atomic JSON file, so that a run killed at any
moment leaves either the previous state or the new one, never half of a file. What a
run's steps do to the entries (plan, server answers, summary) is ``entries.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from client.shapes import Params, Variant

STATE_FILE = ".kadr-state.json"
VERSION = 1

SUCCEEDED = "succeeded"
SKIPPED = "skipped"  # a duplicate: the server points at another item's result
REJECTED = "rejected"  # refused at upload: the same bytes would be refused again
FAILED_STATES = {"failed", "canceled", REJECTED}
TERMINAL_STATES = FAILED_STATES | {SUCCEEDED, SKIPPED}


class StateError(Exception):
    pass


@dataclass
class Entry:
    size: int
    mtime_ns: int
    sha256: str
    batch_id: str | None = None
    item_id: str | None = None
    state: str | None = None
    error: str | None = None
    duplicate_of: str | None = None
    result_link: str | None = None
    output: str | None = None  # relative to the output directory
    downloaded: bool = False
    # With variants there is one entry per photo and variant, keyed ``variant:path``;
    # these say which (None, None: the entry's key is the path and there is one output).
    variant: str | None = None
    rel: str | None = None

    def same_file(self, other: Entry) -> bool:
        return self.sha256 == other.sha256

    @property
    def failed(self) -> bool:
        return not self.downloaded and self.state in FAILED_STATES

    @property
    def resolved(self) -> bool:
        return self.downloaded or self.failed


def slot(rel: str, variant: str | None) -> str:
    """The state's key for one output: the photo's path, or ``variant:path`` when the run
    asks for variants (variant names have no colon, so keys cannot collide)."""
    return f"{variant}:{rel}" if variant else rel


def source(key: str, e: Entry) -> str:
    """The photo's path relative to its input folder."""
    return e.rel or key


def shown(key: str, e: Entry) -> str:
    """How an output is named to people and on disk (before its extension): a variant's
    outputs go in a folder of its name, as in the server's ZIP archive."""
    return f"{e.variant}/{source(key, e)}" if e.variant else key


@dataclass
class State:
    server: str
    params: Params
    batch_id: str | None = None
    inputs: dict[str, Entry] = field(default_factory=dict)
    variants: list[Variant] | None = None  # [{"name", "params"}] over ``params``, as the API takes them

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "server": self.server,
            "batch_id": self.batch_id,
            "params": self.params,
            "variants": self.variants,
            "inputs": {k: asdict(v) for k, v in self.inputs.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        if d.get("version") != VERSION:
            raise StateError(f"unknown state file version {d.get('version')!r}")
        return cls(
            server=d["server"],
            params=d["params"],
            batch_id=d.get("batch_id"),
            variants=d.get("variants"),
            inputs={k: Entry(**v) for k, v in d.get("inputs", {}).items()},
        )

    def by_item(self) -> dict[str, str]:
        return {e.item_id: rel for rel, e in self.inputs.items() if e.item_id}


def load(path: Path) -> State | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return State.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        raise StateError(f"{path} is not a kadr state file ({e}); delete it or use --new-batch") from e


def save(state: State, path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename over it: a reader (or a run
    killed mid-write) sees the old file or the new one, whole."""
    path = Path(path)
    data = json.dumps(state.to_dict(), indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def fingerprint(path: Path, previous: Entry | None = None) -> Entry:
    """Size, mtime and sha256 of a file; the hash is reused when size and mtime did not
    change, so a resume over thousands of photos does not read them all again."""
    st = Path(path).stat()
    if previous and previous.size == st.st_size and previous.mtime_ns == st.st_mtime_ns:
        digest = previous.sha256
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
    return Entry(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=digest)


def mismatch(state: State, server: str, params: Params, variants: list[Variant] | None = None) -> str | None:
    """Why the state file cannot be resumed with these settings, or None."""
    if state.server.rstrip("/") != server.rstrip("/"):
        return f"it was made against {state.server}, not {server}"
    if (state.variants or None) != (variants or None):

        def names(vs: list[Variant] | None) -> str:
            return ", ".join(f"{v['name']} {v['params']}" for v in vs or []) or "none"

        return f"the variants differ ({names(state.variants)} then, {names(variants)} now)"
    if state.params != params:
        keys = sorted(set(state.params) | set(params))
        diff = [
            f"{k}: {_shown(state.params, k)} then, {_shown(params, k)} now"
            for k in keys
            if state.params.get(k) != params.get(k)
        ]
        return "the settings differ (" + "; ".join(diff) + ")"
    return None


def _shown(params: Params, key: str) -> str:
    return repr(params[key]) if key in params else "the server's default"


def sync_inputs(state: State, current: dict[str, Entry]) -> None:
    """Take in the files found now: new ones are added, changed ones start over."""
    for rel, fp in current.items():
        old = state.inputs.get(rel)
        if old is None or not old.same_file(fp):
            state.inputs[rel] = fp
        else:
            old.size, old.mtime_ns = fp.size, fp.mtime_ns
