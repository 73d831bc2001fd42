"""What an operator sees of each relayed call: one log line (logger `tokenhub.calls`) and the metrics.

Recorded once per call, where it ends: a settlement or release (relay/settlement.py), or a refusal
before any upstream call (relay/pipeline.py). Never a secret, a prompt or an answer: ids, the key's
displayed prefix, the catalog's model name, the channel's public id, counts, times and the charge.
Labels are bounded: the model is the catalog's canonical name (a refusal before routing has "-"),
never what a caller typed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tokenhub import metrics
from tokenhub.lib.logs import Fields

logger = logging.getLogger("tokenhub.calls")


FLUSH_SECONDS = 0.25  # how long a call's figures and log line may wait to be added and written
FLUSH_AT = 256  # calls gathered before they are added at once


class _Gathered:
    """The calls that ended since the last flush, added to the metrics together.

    prometheus-client's multiprocess values cost a lock and a write into a memory-mapped file per
    update (3 µs a counter, 10 µs a histogram observation here); summed per label set first, a
    flush costs a few updates for many calls. The figures reach /metrics within FLUSH_SECONDS.
    """

    def __init__(self):
        self.requests: dict[tuple, int] = {}
        self.latency: dict[tuple, list[float]] = {}
        self.ttfb: dict[tuple, list[float]] = {}
        self.count = 0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None

    def add(self, request_labels: tuple, timing_labels: tuple, latency: float | None, ttfb: float | None) -> None:
        self.requests[request_labels] = self.requests.get(request_labels, 0) + 1
        if latency is not None:  # refusals are counted, not timed: they would drag the histogram down
            self.latency.setdefault(timing_labels, []).append(latency)
        if ttfb is not None:
            self.ttfb.setdefault(timing_labels, []).append(ttfb)
        self.count += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a management command, a test): at once
            loop = None
        if self.count >= FLUSH_AT or loop is None or (self.timer is not None and self.timer_loop is not loop):
            self.flush()  # (a timer on another loop, e.g. one a test closed, might never fire)
        elif self.timer is None:
            self.timer, self.timer_loop = loop.call_later(FLUSH_SECONDS, self.flush), loop

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = self.timer_loop = None
        requests, latency, ttfb = self.requests, self.latency, self.ttfb
        self.requests, self.latency, self.ttfb, self.count = {}, {}, {}, 0
        for labels, calls in requests.items():
            metrics.RELAY_REQUESTS.labels(*labels).inc(calls)
        for histogram, gathered in ((metrics.RELAY_LATENCY, latency), (metrics.RELAY_TTFB, ttfb)):
            for labels, values in gathered.items():
                metrics.observe_many(histogram.labels(*labels), values)
        for handler in logger.handlers:  # the call lines of the same calls (tokenhub.lib.logs.BatchedStreamHandler)
            handler.flush()


_gathered = _Gathered()


def flush() -> None:
    """Add what has gathered to the metrics now (a stopping worker, a scrape of this process)."""
    _gathered.flush()


def call_ended(call, record) -> None:
    """A call that reached the ledger's end (settled or released): its record says how it went."""
    stream = "true" if call.stream else "false"
    latency = time.perf_counter() - call.started
    ttfb = call.answered_at - call.started if call.answered_at else None
    channel = record.channel or "-"
    _gathered.add(
        (call.plan.model.name, call.caller_format, channel, record.status), (call.caller_format, stream), latency, ttfb
    )
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": call.request_id,
        "user_id": call.identity.user_id,
        "key_prefix": call.identity.prefix,
        "model": call.plan.model.name,
        "channel": channel,
        "attempts": call.attempts,
        "status": record.status,
        "latency_ms": int(latency * 1000),
        "ttfb_ms": int(ttfb * 1000) if ttfb is not None else None,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": format(record.cost_usd, "f"),
    }
    logger.info("call %s", Fields(fields), extra={"fields": fields})


def call_refused(request, caller_format: str, status: int, code: str, started: float = 0.0) -> None:
    """A call refused before any upstream call (nothing charged)."""
    outcome = f"refused_{status}"
    latency = time.perf_counter() - started if started else 0.0
    _gathered.add(("-", caller_format, "-", outcome), (caller_format, "false"), None, None)
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": getattr(request, "request_id", ""),
        "user_id": None,
        "key_prefix": None,
        "model": "-",
        "channel": "-",
        "attempts": 0,
        "status": outcome,
        "code": code,
        "latency_ms": int(latency * 1000),
        "ttfb_ms": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": "0",
    }
    logger.info("call %s", Fields(fields), extra={"fields": fields})


def upstream_failed(channel: str, kind: str) -> None:
    metrics.UPSTREAM_ERRORS.labels(channel, kind).inc()
