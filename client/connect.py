"""What every user command shares: where the server is, the key, and how a failure to
reach it ends the command (exit 2, one line, no traceback)."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

from client.http import ApiError, Client, Unreachable

EXIT_USAGE = 2

R = TypeVar("R")


def connection_options(f: Callable[..., R]) -> Callable[..., R]:
    """``--server`` and ``--key`` in place of the command's ``client`` argument."""

    @click.option(
        "--server", envvar="KADR_URL", metavar="URL", help="server URL, e.g. http://127.0.0.1:8080 (env KADR_URL)"
    )
    @click.option("--key", "api_key", envvar="KADR_API_KEY", metavar="KEY", help="API key (env KADR_API_KEY)")
    @functools.wraps(f)
    def wrapper(*args: Any, server: str | None, api_key: str | None, **kw: Any) -> R:
        if not server:
            raise click.UsageError("no server: pass --server URL or set KADR_URL")
        if not api_key:
            raise click.UsageError("no API key: pass --key KEY or set KADR_API_KEY")
        return f(*args, client=Client(server, api_key), **kw)

    return wrapper


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def message_for(e: Exception) -> str:
    if isinstance(e, ApiError):
        return f"{e.message} ({e.code}, HTTP {e.status})"
    if isinstance(e, Unreachable):
        return f"cannot reach the server: {e}"
    return str(e)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """API and connection errors end the command with their message and exit code 2."""
    try:
        yield
    except (ApiError, Unreachable) as e:
        fail(message_for(e))
