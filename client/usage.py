"""``kadr usage``: what this key stores on the server and when it expires."""

from __future__ import annotations

import json
import time

import click

from client.connect import connection_options, reported_errors
from client.http import Client
from client.shapes import Usage


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def describe(u: Usage, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    lines = []
    for kind, t in u["kinds"].items():
        line = f"{kind:8} {t['count']:6d}  {human_bytes(t['bytes']):>10}  {t['files']:7d} files"
        if t.get("live"):
            line += f", {t['live']} still working"
        next_expiry = t.get("next_expiry")
        if next_expiry:
            line += f"; next expires in {max(0.0, next_expiry - now) / 3600:.1f} h"
        lines.append(line)
    lines.append(f"total    {human_bytes(u['total_bytes']):>17}")
    as_of = u.get("as_of")
    lines.append(
        "as of " + (f"{max(0.0, now - as_of):.0f} s ago" if as_of else "- (the janitor has not surveyed the store yet)")
    )
    return lines


@click.command("usage")
@click.option("--json", "as_json", is_flag=True, help="print the server's JSON object")
@connection_options
def usage(as_json: bool, client: Client) -> None:
    """Bytes and counts this key stores per kind, and when the next of each expires."""
    with reported_errors():
        u: Usage = client.get_json("/api/v1/usage")
    if as_json:
        click.echo(json.dumps(u, indent=2))
        return
    for line in describe(u):
        click.echo(line)
