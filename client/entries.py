"""What the steps of a ``kadr enhance`` run do to the entries of its resume state: the plan
(what is done, failed, to watch or to upload), the server's answers taken in, the output's
name and link, and the summary at the end. Plain functions on ``state.Entry``; only the
run's main thread calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from client.shapes import ErrorBody, Item
from client.state import FAILED_STATES, REJECTED, SKIPPED, SUCCEEDED, Entry, State, shown


def forget_batch(state: State, batch_id: str) -> None:
    """The server no longer knows ``batch_id``: what was not downloaded is uploaded again."""
    for e in state.inputs.values():
        if e.batch_id == batch_id and not e.downloaded:
            _reset(e)
    if state.batch_id == batch_id:
        state.batch_id = None


@dataclass
class Plan:
    done: list[str] = field(default_factory=list)  # output on disk
    failed: list[str] = field(default_factory=list)  # refused for good; not sent again
    watch: list[str] = field(default_factory=list)  # known to the server: wait, download
    upload: list[str] = field(default_factory=list)


def plan(state: State, rels: Iterable[str], out_dir: Path) -> Plan:
    p = Plan()
    for rel in rels:
        e = state.inputs[rel]
        if e.downloaded and e.output and (Path(out_dir) / e.output).is_file():
            p.done.append(rel)
            continue
        e.downloaded = False  # the output was removed: fetch it again
        if e.state == REJECTED:
            p.failed.append(rel)
        elif e.state == "canceled":
            # Someone canceled it, not the photo's fault: a new run means "do it".
            _reset(e)
            p.upload.append(rel)
        elif e.item_id:
            p.watch.append(rel)
        else:
            p.upload.append(rel)
    return p


def record_accepted(e: Entry, batch_id: str, item: Item) -> None:
    e.batch_id, e.item_id = batch_id, item["id"]
    e.error = None
    record_item(e, item)


def record_rejected(e: Entry, code: str, message: str) -> None:
    _reset(e)
    e.state, e.error = REJECTED, f"{code}: {message}" if code else message


def record_item(e: Entry, item: Item) -> None:
    """Take in what the server says about the item (listing, event or upload answer)."""
    e.state = item.get("state") or e.state
    e.duplicate_of = item.get("duplicate_of") or e.duplicate_of
    link = (item.get("links") or {}).get("result")
    if link:
        e.result_link = link
    if e.state in FAILED_STATES:
        e.error = _error_text(item.get("error")) or e.error or e.state
    elif e.state in (SUCCEEDED, SKIPPED):
        e.error = None


def result_link(e: Entry) -> str:
    if e.result_link:
        return e.result_link
    return f"/api/v1/jobs/{e.duplicate_of if e.state == SKIPPED and e.duplicate_of else e.item_id}/result"


def output_name(rel: str, ext: str, taken: set[str]) -> str:
    """``rel`` (an entry's ``shown`` name) with the output's extension; ``a.jpg`` and
    ``a.png`` both giving ``a.png`` would overwrite each other, so the second keeps its
    own extension in the name."""
    ext = ext.lstrip(".").lower()
    p = PurePosixPath(rel)
    name = str(p.with_suffix(f".{ext}")) if ext else rel
    if name in taken and name != rel:
        name = f"{rel}.{ext}"
    return name


def mark_downloaded(e: Entry, output: str) -> None:
    e.output, e.downloaded, e.error = output, True, None


def _reset(e: Entry) -> None:
    e.batch_id = e.item_id = e.state = e.error = e.duplicate_of = e.result_link = None
    e.downloaded = False


def _error_text(err: ErrorBody | str | None) -> str | None:
    if not err:
        return None
    if isinstance(err, dict):
        code, msg = err.get("code"), err.get("message")
        return f"{code}: {msg}" if code and msg else (msg or code)
    return str(err)


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def summarize(state: State, rels: Sequence[str]) -> Summary:
    by_item = state.by_item()
    s = Summary(total=len(rels))
    for rel in rels:
        e = state.inputs[rel]
        if e.downloaded:
            s.done += 1
            if e.duplicate_of:
                orig = by_item.get(e.duplicate_of)
                s.duplicates.append((shown(rel, e), shown(orig, state.inputs[orig]) if orig else e.duplicate_of))
        elif e.failed:
            s.failed.append((shown(rel, e), e.error or str(e.state)))  # failed: the state is set
        else:
            s.pending.append(shown(rel, e))
    return s
