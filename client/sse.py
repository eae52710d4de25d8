"""A Server-Sent Events decoder (the text/event-stream format), fed with raw chunks."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


def parse_sse(chunks: Iterable[bytes]) -> Iterator[Event]:
    data: list[str]
    last_id: str | None
    name, data, last_id = "", [], None
    for line in _lines(chunks):
        if line == "":
            if data:
                yield Event(name or "message", "\n".join(data), last_id)
            name, data = "", []
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            last_id = value


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    buf, pending_cr = "", False
    for chunk in chunks:
        text = decoder.decode(chunk)
        if pending_cr and text.startswith("\n"):
            text = text[1:]  # the "\n" of a "\r\n" split across chunks
        pending_cr = False
        buf += text
        start = 0
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch == "\n" or ch == "\r":
                yield buf[start:i]
                if ch == "\r":
                    if i + 1 < len(buf) and buf[i + 1] == "\n":
                        i += 1
                    elif i + 1 == len(buf):
                        pending_cr = True
                start = i + 1
            i += 1
        buf = buf[start:]
    if buf:
        yield buf
