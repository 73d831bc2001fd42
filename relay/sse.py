"""Incremental Server-Sent Events parsing: bytes in, complete events out, constant memory.

Upstream chunks may split anywhere (inside a UTF-8 character, inside the JSON of an event);
only complete events are handed on, each with its raw bytes so a pass-through can forward
them unchanged without re-encoding.
"""

from __future__ import annotations

import json
from typing import NamedTuple

MAX_EVENT_BYTES = 4 * 1024 * 1024  # a single event larger than this is a broken upstream


class Event(NamedTuple):  # a tuple: built for every upstream event, so the cheapest immutable record
    raw: bytes  # the event's bytes including its blank-line terminator
    name: str  # the `event:` field ("" when absent, i.e. "message")
    data: bytes  # the `data:` lines joined with "\n"

    def json(self):
        return json.loads(self.data)


class SSEError(ValueError):
    pass


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start : end + 2]
            start = end + 2
            event = parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise SSEError("an upstream event exceeded the size limit")
        return events

    @property
    def pending(self) -> bytes:
        return self._buffer


def parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and block.find(b"\n") == len(block) - 2:
        return Event(block, "", block[6:-2])  # the common case: one data line
    name, data_lines = "", []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data_lines and not name:
        return None  # a comment or keep-alive only
    return Event(raw=block, name=name, data=b"\n".join(data_lines))


def encode(data: bytes | str, name: str = "") -> bytes:
    """One event on the wire."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + data + b"\n\n"
