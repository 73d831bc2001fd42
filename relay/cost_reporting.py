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
for _name in ("response.incomplete", "response.failed"):
    FINAL_USAGE_EVENTS[_name] = FINAL_USAGE_EVENTS["response.completed"]
# Where other events may carry a usage object; a `cost_usd` a channel put in one is taken out.
OTHER_USAGE_PATHS = (("usage",), ("message", "usage"), ("response", "usage"))


def _may_carry_usage(piece: bytes) -> bool:
    """Could this event hold a usage object? Byte searches only, in any spelling JSON allows: the word
    (OpenAI's `"usage":null` on every chunk aside), or any \\u escape, with which a channel could write
    "cost\\u005fusd" or "\\u0075sage" past a plain search."""
    if b"\\u" in piece:
        return True
    mentions = piece.count(b"usage")
    return mentions > 0 and mentions != piece.count(b'"usage":null')


def add_to_body(body: dict, cost: Decimal) -> bool:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return False
    usage["cost_usd"] = plain(cost)
    return True


def _at(data, path) -> dict | None:
    found = data
    for step in path:
        found = found.get(step) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else None


def _final_usage(name: str, data) -> dict | None:
    path = FINAL_USAGE_EVENTS.get(name, ("usage",) if name == "" else None)
    return _at(data, path) if path is not None and isinstance(data, dict) else None


def add_to_events(pieces: list[bytes], cost) -> list[bytes]:
    """Outgoing SSE events (each one whole event), with TokenHub's cost on those carrying the final usage
    and any `cost_usd` of the channel's own taken out of the others.

    `cost` is called only for a final-usage event (most batches of a stream have none, and pay a few byte
    searches, not the Decimal arithmetic); None from it (no usage known yet) leaves no figure at all."""
    if not any(map(_may_carry_usage, pieces)):
        return pieces
    out = []
    for piece in pieces:
        if not _may_carry_usage(piece):
            out.append(piece)
            continue
        event = parse_block(piece)
        if event is None or event.data == b"[DONE]":
            out.append(piece)
            continue
        try:
            data = json.loads(event.data)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's limit: passed as it came
            out.append(piece)
            continue
        if not _rewrite(event.name, data, cost):
            out.append(piece)
            continue
        out.append(encode(json.dumps(data, separators=(",", ":"), ensure_ascii=False), event.name))
    return out


def _rewrite(name: str, data, cost) -> bool:
    """Set TokenHub's cost on the final usage, take the channel's out of any other; True if changed."""
    final = _final_usage(name, data)
    if final is not None:
        figure = cost()
        if figure is not None:
            final["cost_usd"] = plain(figure)
            return True
        if "cost_usd" in final:
            del final["cost_usd"]
            return True
        return False
    changed = False
    for path in OTHER_USAGE_PATHS:
        usage = _at(data, path) if isinstance(data, dict) else None
        if usage is not None and "cost_usd" in usage:
            del usage["cost_usd"]
            changed = True
    return changed
