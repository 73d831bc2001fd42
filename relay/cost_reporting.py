"""The amount charged, in the answer itself: `usage.cost_usd`, a string with 8 decimals.

- plain answers: the body's top-level `usage` (Chat Completions, Messages and Responses alike), and
  the `x-tokenhub-cost` header;
- streams: the event that carries the final usage — OpenAI's usage chunk (sent when the caller set
  `stream_options.include_usage`), Anthropic's `message_delta`, Responses' `response.completed` (or
  `response.incomplete`) — whether it came from the channel as it is or from a translator.

The figure is `settlement.charge`, the ledger's own formula on the usage the answer reports (the hold's
prices, at most the hold, less the cut on an owner's own call), so it is what the settlement books.
Only the few events that can carry a final usage are parsed; the others pass as bytes. A channel's
own `cost_usd` in an event that carries a usage but not the final one (Anthropic's `message_start`,
Responses' `response.created`) is taken out: only TokenHub's figure reaches the caller.
"""

from __future__ import annotations

import json
from decimal import Decimal

from tokenhub.lib.money import plain

from .sse import encode, parse_block

FINAL_USAGE_EVENTS = {"message_delta": ("usage",), "response.completed": ("response", "usage")}
FINAL_USAGE_EVENTS["response.incomplete"] = FINAL_USAGE_EVENTS["response.completed"]
MARKERS = (b"message_delta", b"response.completed", b"response.incomplete", b'"usage":{', b'"usage": {', b"cost_usd")
EARLY_USAGE_EVENTS = {
    "message_start": ("message", "usage"),
    "response.created": ("response", "usage"),
    "response.in_progress": ("response", "usage"),
}


def add_to_body(body: dict, cost: Decimal) -> bool:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return False
    usage["cost_usd"] = plain(cost)
    return True


def _usage_of(name: str, data, events=FINAL_USAGE_EVENTS):
    if not isinstance(data, dict):
        return None
    path = events.get(name, ("usage",) if name == "" else None)
    if path is None:
        return None
    found = data
    for step in path:
        found = found.get(step) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else None


def add_to_events(pieces: list[bytes], cost) -> list[bytes]:
    """Outgoing SSE events (each one whole event), with the cost added to those carrying final usage.

    `cost` is called only for such an event: most batches of a stream have none, and pay a few byte
    searches, not the Decimal arithmetic."""
    if not any(marker in piece for piece in pieces for marker in MARKERS):
        return pieces
    out = []
    for piece in pieces:
        if not any(marker in piece for marker in MARKERS):
            out.append(piece)
            continue
        event = parse_block(piece)
        if event is None or event.data == b"[DONE]":
            out.append(piece)
            continue
        try:
            data = json.loads(event.data)
        except ValueError:
            out.append(piece)
            continue
        usage = _usage_of(event.name, data)
        if usage is not None:
            usage["cost_usd"] = plain(cost())
        else:
            usage = _usage_of(event.name, data, EARLY_USAGE_EVENTS)
            if usage is None or "cost_usd" not in usage:
                out.append(piece)
                continue
            del usage["cost_usd"]
        out.append(encode(json.dumps(data, separators=(",", ":"), ensure_ascii=False), event.name))
    return out
