"""Streaming an answer: the pump that reads the upstream and owns the settlement, the inspection of
each upstream event (usage, completion), and the response class that forwards what the pump queues.

Events are forwarded as they come (no buffering beyond the pump's small queue); when the formats
differ each is translated by the direction's state machine (relay/translate).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal

import httpx
from django.conf import settings
from django.http import StreamingHttpResponse

from billing.models import UsageStatus
from billing.pricing import Usage

from . import cost_reporting, failover, settlement
from . import usage as usage_of
from .call import Call
from .errors import ANTHROPIC, error_body
from .sse import SSEError, SSEParser, encode

logger = logging.getLogger(__name__)


class RelayStream(StreamingHttpResponse):
    """Forwards what the pump queues; a disconnect's aclose() (or `abandon`) reaches the pump directly."""

    def __init__(self, pump: Pump):
        self._pump = pump
        self._generator = pump.forwarded()
        super().__init__(self._generator, content_type="text/event-stream")
        self["cache-control"] = "no-cache"
        self["x-accel-buffering"] = "no"

    def __aiter__(self):
        return self._generator

    def abandon(self) -> None:
        """The response will not be sent (or not to its end): the client is gone."""
        self._pump.client_left()


@dataclass
class StreamState:
    usage: Usage | None = None
    anthropic_start: Usage | None = None
    content_events: int = 0
    finished: bool = False


def inspect(call: Call, upstream_operation: str, state: StreamState, event) -> bool:
    """Capture usage and completion from one upstream event; False for an event the caller must not see."""
    data = event.data
    if upstream_operation == "messages":
        if event.name == "message_start":
            state.anthropic_start = usage_of.from_anthropic(event.json().get("message", {}).get("usage"))
            state.usage = state.anthropic_start
        elif event.name == "message_delta":
            state.usage = usage_of.merge_anthropic(state.anthropic_start, event.json().get("usage"))
        elif event.name == "content_block_delta":
            state.content_events += 1
        elif event.name == "message_stop":
            state.finished = True
        return True
    if upstream_operation == "responses":
        if event.name in ("response.completed", "response.failed", "response.incomplete"):
            state.usage = usage_of.from_openai(event.json().get("response", {}).get("usage"))
            state.finished = True
        elif event.name.endswith(".delta"):
            state.content_events += 1
        return True
    if data == b"[DONE]":
        state.finished = True
        return True
    # OpenAI sends "usage": null on every chunk once usage is requested: only parse a real one.
    if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
        chunk = event.json()
        found = usage_of.from_openai(chunk.get("usage"))
        if found is not None:
            state.usage = found
            if not chunk.get("choices") and not call.caller_wants_usage:
                return False  # the usage chunk TokenHub asked for on its own behalf
    state.content_events += 1
    return True


def error_event(call: Call, message: str) -> bytes:
    body = error_body(call.caller_format, 502, message, "upstream_error")
    if call.caller_format == ANTHROPIC:
        return encode(json.dumps(body), "error")
    return encode(json.dumps(body))


# Streams being pumped in this process, for a stopping worker to cut (tokenhub/worker.py).
_live_pumps: weakref.WeakSet = weakref.WeakSet()


def cut_streams_after(seconds: float) -> None:
    """The worker is stopping: streams still open after `seconds` are ended with an error event and settled."""

    def cut() -> None:
        pumps = list(_live_pumps)
        if pumps:
            logger.warning("stopping: cutting %d open stream(s) after a %g s grace", len(pumps), seconds)
        for pump in pumps:
            pump.cut()

    asyncio.get_running_loop().call_later(seconds, cut)


class Pump:
    """Reads the upstream in a task of its own and owns the settlement.

    The response generator only forwards what the pump queues, so a client disconnect cannot
    cut the settlement short: with the "cancel" policy the pump is cancelled and bills what it
    read (at most a few events beyond what reached the client); with "drain" it keeps reading
    to the end and bills the upstream's own usage.
    """

    def __init__(self, call: Call, attempt: failover.Attempt):
        self.call, self.attempt = call, attempt
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        self.state = StreamState()
        self.parser = SSEParser()
        self.error = ""
        self.detached = False  # the client is gone; keep reading but queue nothing
        self.client_gone = False
        self.task: asyncio.Task | None = None
        self.cutting = False  # the worker is stopping: end the stream with an error event
        found = call.prepared_for(attempt.route).translation
        self.translator = found.stream() if found else None

    def start(self) -> None:
        self.task = settlement.hand_over(self.call, self.run())
        _live_pumps.add(self)
        self.task.add_done_callback(lambda _task: _live_pumps.discard(self))

    def cut(self) -> None:
        """The worker is stopping: end this stream now, with an error event, billed for what was delivered."""
        if self.task is not None and not self.task.done() and not self.client_gone:
            self.cutting = True
            self.task.cancel()

    def forward(self, events) -> bytes:
        """Inspect upstream events; pass them through, or translate them into the caller's format."""
        out = []
        for event in events:
            keep = inspect(self.call, self.attempt.operation, self.state, event)
            if self.translator is not None:
                out += self.translator.feed(event)
            elif keep:
                out.append(event.raw)
        if out:  # the event with the final usage says what it costs; no other carries a channel's figure
            out = cost_reporting.add_to_events(out, self.charge)
        return b"".join(out)

    def charge(self) -> Decimal | None:
        return None if self.state.usage is None else settlement.charge(self.call, self.attempt, self.state.usage)

    async def emit(self, data: bytes) -> None:
        if not self.detached:
            await self.queue.put(data)

    async def fail(self, error: str, message: str) -> None:
        """The stream ends here: say why to the caller, in their format, and record it for the settlement."""
        self.error = error
        await self.emit(error_event(self.call, message))

    async def run(self) -> None:
        call, state = self.call, self.state
        # Stalls are caught by the client's read timeout (first byte and between chunks);
        # the total time is checked between chunks.
        deadline = call.started + settings.TOKENHUB_UPSTREAM_TOTAL_TIMEOUT
        try:
            async for chunk in self.attempt.response.aiter_raw():
                out = self.forward(self.parser.feed(chunk))
                if out:
                    await self.emit(out)
                if time.perf_counter() > deadline and not state.finished:
                    await self.fail(
                        "the upstream exceeded the total time limit",
                        "The answer exceeded TokenHub's total time limit and was cut.",
                    )
                    break
            if not state.finished and not self.error:
                await self.fail(
                    "the upstream ended the stream early",
                    "The upstream ended the stream before the answer was complete.",
                )
        except (httpx.HTTPError, SSEError) as exc:
            await self.fail(
                f"upstream failed mid-stream: {type(exc).__name__}",
                "The upstream connection failed mid-stream; you are billed only for what was delivered.",
            )
        except asyncio.CancelledError:
            if not self.cutting:
                raise
            await self.fail(
                "cut: the worker was stopping",
                "TokenHub is restarting and cut this answer here; you are billed for what was delivered.",
            )
        except Exception as exc:  # an event TokenHub cannot read (bad JSON, wrong types): the stream ends here
            await self.fail(
                f"unreadable upstream event: {type(exc).__name__}",
                "The upstream sent an event TokenHub could not read; you are billed for what was delivered.",
            )
        finally:
            # The settlement is arranged first, with no await before it: a cancellation arriving in
            # what follows (the client leaving while the queue is full) cannot skip it.
            self.arrange_settlement()
            await self.attempt.response.aclose()
            if not self.client_gone:
                await self.queue.put(None)  # end of the answer for the response generator

    def arrange_settlement(self) -> None:
        call, state = self.call, self.state
        complete = state.finished and not self.error
        status = UsageStatus.OK if complete and not self.client_gone else UsageStatus.PARTIAL
        error = self.error
        if self.client_gone:
            error = "client disconnected; upstream drained" if complete else "client disconnected"
        call.owned = True
        if state.usage is None and state.content_events == 0:
            # Not one event and no usage (an HTML page, a stream dead at once): nothing to bill, as
            # for a plain answer TokenHub cannot read; the estimate would charge for the prompt.
            settlement.in_background(settlement.release(call, error or "the upstream sent no events"))
        else:
            settlement.in_background(
                settlement.settle(call, self.attempt, state.usage, status, state.content_events, error)
            )

    def client_left(self) -> None:
        if self.client_gone or self.task is None or self.task.done():
            return
        self.client_gone = True
        if settings.TOKENHUB_DISCONNECT_POLICY == "drain":
            self.detached = True
            while not self.queue.empty():  # unblock a pending put
                self.queue.get_nowait()
        else:
            self.task.cancel()

    async def forwarded(self):
        """What the caller is sent: the pump's queue until its end marker."""
        finished = False
        try:
            while True:
                data = await self.queue.get()
                if data is None:
                    finished = True
                    return
                yield data
        finally:
            if not finished:
                self.client_left()
