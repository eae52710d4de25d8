"""The HTTP client of the user commands: bearer auth, timeouts, retries that ride out a
gateway restart or a full queue.

Only requests and the standard library: the user commands run on machines that have
none of the server's packages.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

import requests
from requests.adapters import HTTPAdapter

from client.sse import Event, parse_sse

# 507: the server's job store is past its mark; space comes back as work ends, retention
# runs or the user deletes: waited out like back-pressure, within the busy window.
RETRY_STATUSES = {429, 502, 503, 504, 507}
# nginx answers this when the gateway itself is down: an outage, not back-pressure.
OUTAGE_CODES = {"gateway_unavailable"}

UploadFiles = dict[str, tuple[str, BinaryIO]]  # requests' ``files``: field -> (file name, open file)


class ApiError(Exception):
    """The server answered with an error the caller has to decide about."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, request_id: str = "") -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status, self.code, self.message = status, code, message
        self.details, self.request_id = details, request_id


class Unreachable(Exception):
    """The server stayed unreachable (or kept answering 5xx) for the whole retry window."""


def api_error(resp: requests.Response) -> ApiError:
    try:
        err = resp.json()["error"]
        return ApiError(
            resp.status_code,
            err.get("code", "http_error"),
            err.get("message", ""),
            err.get("details"),
            err.get("request_id", ""),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        # Not the API's JSON: a proxy's page, or not a kadr server at all.
        return ApiError(resp.status_code, "http_error", f"{resp.reason or 'error'} from {resp.url}")


def retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        outage_window: float = 300,
        busy_window: float = 3600,
        first_contact_window: float = 20,
        max_backoff: float = 15,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        # How long to keep trying through connection errors / 502 / 504 (a restart), and
        # through 429 / 503 + Retry-After (a full queue: the server is alive, just busy).
        self.outage_window, self.busy_window = outage_window, busy_window
        # A server never reached is more likely a wrong URL than a restart: fail sooner.
        self.first_contact_window, self.reached = first_contact_window, False
        self.max_backoff, self._sleep = max_backoff, sleep
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.session.headers["User-Agent"] = "kadr-cli"
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        files: Callable[[], UploadFiles] | None = None,
        ok: tuple[int, ...] = (),
        **kw: Any,
    ) -> requests.Response:
        """Send, retrying transient failures; 2xx (and ``ok``) return, other errors raise.

        ``files`` is a factory: an upload is re-read from the start on each attempt.
        """
        kw.setdefault("timeout", self.timeout)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            opened = files() if files else None
            try:
                resp = self.session.request(method, self.url(path), files=opened, **kw)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                window = self.outage_window if self.reached else self.first_contact_window
                wait, why = None, _short(e)
            else:
                self.reached = True
                if resp.status_code < 400 or resp.status_code in ok:
                    return resp
                if resp.status_code not in RETRY_STATUSES:
                    raise api_error(resp)
                err = api_error(resp)
                wait = retry_after(resp)
                busy = resp.status_code in (429, 507) or (
                    resp.status_code == 503 and wait is not None and err.code not in OUTAGE_CODES
                )
                window = self.busy_window if busy else self.outage_window
                why = str(err)
                resp.close()
            finally:
                for f in (opened or {}).values():
                    _close(f)
            if time.monotonic() - started > window:
                raise Unreachable(f"{method} {path}: gave up after {attempt} attempts: {why}")
            backoff = min(self.max_backoff, 0.5 * 2 ** min(attempt - 1, 6)) * random.uniform(0.7, 1.0)
            self._sleep(min(wait, 60) if wait is not None else backoff)

    # The JSON methods return the body as parsed: the caller names its shape (client.shapes).

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post_json(self, path: str, body: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, **kw).json()

    def upload(self, path: str, field: str, file_path: Path, name: str) -> Any:
        return self.request(
            "POST",
            path,
            files=lambda: {field: (name, open(file_path, "rb"))},
            timeout=(self.timeout[0], max(self.timeout[1], 120)),
        ).json()

    def download(self, path: str, dest_dir: Path) -> tuple[Path, requests.Response]:
        """Stream a body into a temporary file in ``dest_dir``; the caller renames it into
        place, so an interrupted download never leaves a half-written output behind. A body
        cut off mid-way (a restart) is fetched again, within the outage window."""
        started, attempt = time.monotonic(), 0
        dest_dir.mkdir(parents=True, exist_ok=True)
        while True:
            attempt += 1
            resp = self.request("GET", path, stream=True)
            fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".kadr-", suffix=".part")
            try:
                with resp, os.fdopen(fd, "wb") as out:
                    for chunk in resp.iter_content(1 << 16):
                        out.write(chunk)
                return Path(tmp), resp
            except requests.RequestException as e:
                os.unlink(tmp)
                if time.monotonic() - started > self.outage_window:
                    raise Unreachable(f"GET {path}: body cut off {attempt} times: {e}") from e
                self._sleep(min(self.max_backoff, 0.5 * 2 ** min(attempt - 1, 6)))
            except BaseException:
                os.unlink(tmp)
                raise

    def stream_to(self, path: str, write: Callable[[bytes], object], **kw: Any) -> None:
        with self.request("GET", path, stream=True, **kw) as resp:
            for chunk in resp.iter_content(1 << 16):
                write(chunk)

    def events(
        self, path: str, *, read_timeout: float = 90, on_open: Callable[[requests.Response], object] | None = None
    ) -> Iterator[Event]:
        """Server-Sent Events of ``path``; ends when the server closes the stream. A broken
        stream raises (requests' errors): the caller decides whether to reconnect or poll.
        ``on_open`` gets the response, so another thread can close it to stop the reader."""
        resp = self.request(
            "GET", path, stream=True, headers={"Accept": "text/event-stream"}, timeout=(self.timeout[0], read_timeout)
        )
        if on_open:
            on_open(resp)
        with resp:
            yield from parse_sse(_available_chunks(resp))

    def close(self) -> None:
        self.session.close()


def _close(f: object) -> None:
    fh = f[1] if isinstance(f, tuple) else f
    close = getattr(fh, "close", None)
    if close:
        close()


def _available_chunks(resp: requests.Response) -> Iterator[bytes]:
    # read1 hands over whatever has arrived; iter_content would wait for a full chunk and
    # hold an event back until the next keep-alive.
    while True:
        data = resp.raw.read1(1 << 16)
        if not data:
            return
        yield data


def _short(e: Exception) -> str:
    text = str(e)
    for phrase in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Connection reset",
        "Connection aborted",
        "No route to host",
    ):
        if phrase.lower() in text.lower():
            return phrase.lower()
    return f"{type(e).__name__}: {text[:200]}"
