"""Log lines as JSON (LOG_FORMAT=json) or readable text, the same for Django, gunicorn and Celery.

A record's `fields` (passed as `extra={"fields": {...}}`) become keys of its JSON object; in the
readable format they are already in the message as key=value.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def formatters() -> dict:
    return {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "tokenhub.lib.logs.JsonFormatter"},
    }


class BatchedStreamHandler(logging.StreamHandler):
    """A stream handler that formats and writes its records in batches (the per-call log).

    A line per relayed call through a plain StreamHandler cost ~50 µs of the worker's time a call
    (formatting, a write and a flush each), 7 % of a worker's throughput at 50 callers (make bench,
    2026-12-03). Here a record is kept as it is; formatting and one write happen when `flush` runs:
    every 256 records, when relay/observe.py flushes its gathered calls (within 0.25 s), and at
    logging's shutdown.
    """

    def __init__(self, stream=None, capacity: int = 256):
        super().__init__(stream)
        self.capacity = capacity
        self.pending: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.pending.append(record)  # under the handler's lock (Handler.handle)
        if len(self.pending) >= self.capacity:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
            if not pending:
                return
            lines = []
            for record in pending:
                try:
                    lines.append(self.format(record) + self.terminator)
                except Exception:
                    self.handleError(record)
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:
                self.handleError(pending[-1])


class Fields:
    """A record's key=value message, built only when the line is formatted (not on the request's path)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict):
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.fields.items())
