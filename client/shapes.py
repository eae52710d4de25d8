"""The shapes of what the user commands pass around: the server's JSON, as far as the
client reads or sends it, and the messages a run's threads put on its queue.

The API's own schemas live with the gateway, which a client-only install does not have:
these name only the fields the client uses. ``total=False`` where the client reads with
``.get`` and does without a field the server leaves out.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict

from client.http import ApiError
from client.sse import Event

ParamValue = str | int | bool
Params = dict[str, ParamValue]  # enhance options: quality, upscale, max_faces, prescale


class Variant(TypedDict):
    name: str
    params: Params


class ErrorBody(TypedDict, total=False):
    code: str
    message: str


class Links(TypedDict, total=False):
    result: str


class Item(TypedDict, total=False):
    """A batch item: in a listing, an ``item`` event, an upload's answer."""

    id: Required[str]
    state: str
    variant: str
    duplicate_of: str | None
    error: ErrorBody | str | None
    links: Links


class Rejection(TypedDict, total=False):
    name: str
    code: str
    message: str


class UploadAnswer(TypedDict, total=False):
    accepted: list[Item]
    rejected: list[Rejection]


class ItemsPage(TypedDict, total=False):
    items: list[Item]
    next_offset: int | None


class Running(TypedDict):
    progress: float


class Batch(TypedDict, total=False):
    """A batch as ``GET /batches/{id}`` and the ``progress`` event give it."""

    id: Required[str]
    kind: str
    state: str
    open: bool
    paused: bool
    progress: float
    percent: float
    total: int
    counts: dict[str, int]
    throughput_per_s: float | None
    eta_seconds: float | None
    running: list[Running]


class NewBatch(TypedDict, total=False):
    kind: Required[str]
    params: Required[Params]
    variants: list[Variant]
    name: str


class Job(TypedDict, total=False):
    state: str | None


class KindUsage(TypedDict, total=False):
    count: int
    bytes: int
    files: int
    live: int
    next_expiry: float | None


class Usage(TypedDict, total=False):
    as_of: float | None
    kinds: dict[str, KindUsage]
    total_bytes: int


# What the threads of a run tell its main thread (``BatchRun._handle``), by the first field.
Message = (
    tuple[Literal["fatal"], str]
    | tuple[Literal["uploaded"], str, UploadAnswer]
    | tuple[Literal["rejected"], str, ApiError]
    | tuple[Literal["event"], Event]
    | tuple[Literal["stream_reopened"]]
    | tuple[Literal["stream_closed"], Exception | None]
    | tuple[Literal["downloaded"], str, str, str]
    | tuple[Literal["download_failed"], str, Exception]
)
