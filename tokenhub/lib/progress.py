"""Progress of a long command: a bar on a terminal (tqdm), plain lines otherwise.

Plain lines go out at most every `every` seconds and once at the end, so a command piped to a log
file or run by cron leaves a readable trail instead of carriage returns.
"""

from __future__ import annotations

import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    def __init__(self, stream: TextIO, what: str, total: int | None = None, every: float = 5.0):
        # A management command's OutputWrapper appends a newline to every write: use the stream under it.
        stream = getattr(stream, "_out", stream)
        self.stream, self.what, self.total, self.every = stream, what, total, every
        self.done = 0
        self._bar = tqdm(total=total, unit=f" {what}", file=stream, dynamic_ncols=True) if _tty(stream) else None
        self._last_line = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the count (and the total when it becomes known); fits import_catalog's progress callback."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        if self._bar is not None:
            self._bar.update(done - self.done)
        elif time.monotonic() - self._last_line >= self.every:
            self._write_line()
        self.done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.done:
            self._write_line()

    def _write_line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        self.stream.write(f"{self.done}{of} {self.what}\n")
        self.stream.flush()
        self._last_line = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
