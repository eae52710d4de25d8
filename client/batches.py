"""``kadr batch ...``: look at and steer a batch on the server."""

from __future__ import annotations

import json
import os
import sys

import click

from client.connect import connection_options, reported_errors
from client.http import Client
from client.progress import fmt_seconds
from client.shapes import Batch


@click.group("batch")
def batch() -> None:
    """Batches on the server: status, pause, resume, cancel, retry, manifest."""


def describe(b: Batch) -> str:
    """One line a person can read at a glance."""
    counts = b.get("counts") or {}
    total = b.get("total") or 0
    ended = sum(counts.get(k, 0) for k in ("succeeded", "failed", "skipped", "canceled"))
    waiting = sum(counts.get(k, 0) for k in ("pending", "queued", "running"))
    pct = b.get("percent")
    if pct is None:
        pct = round(100 * (b.get("progress") or 0))
    state = (
        b.get("state", "?")
        + (", open" if b.get("open") else "")
        + (", paused" if b.get("paused") and b.get("state") != "paused" else "")
    )
    parts = [
        f"batch {b.get('id')} ({b.get('kind', '?')}) {state}: {ended}/{total} ended ({pct:.0f}%)",
        f"{counts.get('succeeded', 0)} succeeded",
        f"{counts.get('failed', 0)} failed",
    ]
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped")
    if counts.get("canceled"):
        parts.append(f"{counts['canceled']} canceled")
    if waiting:
        parts.append(f"{waiting} waiting")
    line = ", ".join(parts)
    if b.get("throughput_per_s"):
        line += f"; {b['throughput_per_s']:.2f}/s"
    if b.get("eta_seconds") is not None and waiting:
        line += f", eta {fmt_seconds(b['eta_seconds'])}"
    return line


def _show(b: Batch, as_json: bool) -> None:
    click.echo(json.dumps(b, indent=2) if as_json else describe(b))


@batch.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="print the server's JSON object")
@connection_options
def status(batch_id: str, as_json: bool, client: Client) -> None:
    """Counts, progress and ETA of a batch."""
    with reported_errors():
        _show(client.get_json(f"/api/v1/batches/{batch_id}", params={"limit": 0}), as_json)


def _action(verb: str, doc: str) -> click.Command:
    @click.argument("batch_id")
    @click.option("--json", "as_json", is_flag=True, help="print the server's JSON object")
    @connection_options
    def command(batch_id: str, as_json: bool, client: Client) -> None:
        with reported_errors():
            _show(client.post_json(f"/api/v1/batches/{batch_id}/{verb}"), as_json)

    command.__doc__ = doc
    return batch.command(verb)(command)


pause = _action("pause", "Stop starting new items (running ones finish).")
resume = _action("resume", "Start items again after a pause.")
cancel = _action("cancel", "Cancel every item that has not ended.")
retry = _action("retry", "Queue the failed items again.")


@batch.command("manifest")
@click.argument("batch_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="write here instead of stdout")
@connection_options
def manifest(batch_id: str, fmt: str, output: str | None, client: Client) -> None:
    """Every item of the batch (name, state, error, result link) as CSV or JSON lines."""
    with reported_errors():
        path = f"/api/v1/batches/{batch_id}/manifest.{fmt}"
        if output:
            part = f"{output}.part"  # a failed download leaves the old file, not half a new one
            try:
                with open(part, "wb") as f:
                    client.stream_to(path, f.write)
                os.replace(part, output)
            finally:
                if os.path.exists(part):
                    os.unlink(part)
        else:
            out = sys.stdout.buffer
            client.stream_to(path, out.write)
            out.flush()
