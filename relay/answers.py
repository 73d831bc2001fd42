"""Answers that are not streams: a whole upstream answer (translated when the formats differ, billed
in the background) and the refusals of upstreams, in the caller's format."""

from __future__ import annotations

import json

import httpx
from django.http import HttpResponse

from billing.models import UsageStatus
from billing.pricing import Usage

from . import cost_reporting, failover, settlement
from . import usage as usage_of
from .call import OPERATIONS, Call
from .errors import error_response

# What a body that is not an answer in the channel's format raises while it is read and translated.
UNREADABLE = (
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
    OverflowError,
    ArithmeticError,
)


async def complete(call: Call, attempt: failover.Attempt) -> HttpResponse:
    try:
        content = await attempt.response.aread()
    except httpx.HTTPError as exc:
        await settlement.release_now(call, f"upstream read failed: {type(exc).__name__}")
        return error_response(
            call.caller_format, 502, "The upstream connection failed while sending the answer.", code="upstream_error"
        )
    finally:
        await attempt.response.aclose()
    try:
        data = json.loads(content)
        usage = usage_from_body(attempt.operation, data)
        found = call.prepared_for(attempt.route).translation
        answer = found.response(data) if found is not None else data
    except UNREADABLE as exc:
        # Not an answer in the channel's format (an HTML page, a truncated body…): nothing to bill.
        await settlement.release_now(call, f"the upstream's answer could not be read: {type(exc).__name__}")
        return error_response(
            call.caller_format,
            502,
            "The upstream sent an answer TokenHub could not read; nothing was charged.",
            code="upstream_error",
        )
    output_guess = usage_of.estimate_tokens_from_bytes(len(content))
    # The answer goes out now and the settlement follows it in the background, as for streams:
    # the caller does not wait for the second transaction. The cost is the ledger's own formula.
    charged = settlement.charge(call, attempt, usage or settlement.estimated_usage(call, output_guess))
    if cost_reporting.add_to_body(answer, charged) or found is not None:
        content = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
    call.owned = True
    settlement.in_background(settlement.settle(call, attempt, usage, UsageStatus.OK, estimated_output=output_guess))
    # 200 whatever 2xx the channel chose: its status is not the caller's business (a 205 must carry no body).
    response = HttpResponse(content, content_type="application/json")
    response["x-tokenhub-cost"] = format(charged, "f")
    return response


def usage_from_body(upstream_operation: str, data) -> Usage | None:
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    if upstream_operation == "messages":
        return usage_of.from_anthropic(data.get("usage"))
    return usage_of.from_openai(data.get("usage"))


def upstream_refusal(call: Call, outcome: failover.UpstreamFailure) -> HttpResponse:
    if outcome.caller_fault_body is None:
        return error_response(call.caller_format, outcome.status, outcome.message, code="upstream_error")
    message = upstream_error_message(outcome.caller_fault_body)
    if outcome.channel_format == OPERATIONS[call.operation][0] and message is not None:
        # The caller's own format: the channel's error body as it sent it, but always as JSON.
        return HttpResponse(outcome.caller_fault_body, status=outcome.status, content_type="application/json")
    reason = message or "(no readable error message)"
    return error_response(
        call.caller_format,
        outcome.status,
        f"The model's provider rejected the request: {reason}",
        code="invalid_request",
    )


def upstream_error_message(body: bytes) -> str | None:
    """The message inside an OpenAI- or Anthropic-shaped error body; None when the body is not one.

    A channel's body is never shown as it came unless it is a JSON error: an owner must not be able
    to serve a page of their own from TokenHub's origin.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:500]
    return str(error)[:500] if isinstance(error, str) else None
