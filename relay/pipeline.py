"""One /v1 call: parse → key → rate limit → route → hold → upstream (failover) → stream → settle.

Hot-path budget for a successful call on PostgreSQL + Redis: one cache read for the key, one
`get_many` for the channels' breaker and limit state, one statement for the hold and one for the
settlement, each shared with the worker's other calls of the moment (billing/batched.py; the
ledger's own thread path where that cannot serve). No transaction is held while the answer streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import traceback
import uuid
import weakref
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse

from accounts import keys
from accounts.keys import KeyIdentity
from billing import batched, ledger
from billing.models import Hold, UsageStatus
from billing.pricing import Prices, Usage, cost_of, estimate_max_cost
from channels_app import health, routing

from . import translate, upstream, validation
from . import usage as usage_of
from .errors import ANTHROPIC, OPENAI, error_body, error_response
from .sse import SSEError, SSEParser, encode
from .translate import select

logger = logging.getLogger(__name__)

# operation -> (wire format the channel must speak, whether the body carries messages)
OPERATIONS = {
    "chat": (OPENAI, True),
    "messages": (ANTHROPIC, True),
    "embeddings": (OPENAI, False),
    "responses": (OPENAI, False),
}


class RelayError(Exception):
    def __init__(self, status: int, message: str, code: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass(frozen=True)
class Prepared:
    operation: str  # called upstream: chat, messages, embeddings or responses
    body: dict
    translation: select.Translation | None  # None: same format, passed through
    # The output cap the upstream is told when the caller set none (None: the body has one already).
    output_budget: int | None = None


@dataclass
class Call:
    request_id: str
    operation: str
    caller_format: str
    identity: KeyIdentity
    body: dict
    body_bytes: int
    stream: bool
    plan: routing.Plan
    routes: list[routing.Route]
    prices: Prices
    forward_headers: dict[str, str]
    caller_wants_usage: bool
    model: translate.ModelDefaults
    hold: Hold
    # select.key(route) -> what that kind of channel is sent; same format passes the body through.
    prepared: dict[str, Prepared] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    attempt: upstream.Attempt | None = None  # the channel answering, once one does
    # True once the hold's settlement or release is under way (or the stream's pump owns it):
    # from then on nothing else may end it. See _end_unowned.
    owned: bool = False
    delegated: bool = False  # a task of its own (the pump, a non-streamed answer) owns the hold: _hand_over

    def prepared_for(self, route: routing.Route) -> Prepared:
        return self.prepared[select.key(self.operation, route.api_format, route.provider)]

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


# --- Admission -------------------------------------------------------------------------------


def presented_key(request) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


async def authenticate(request) -> KeyIdentity:
    raw = presented_key(request)
    if not raw:
        raise RelayError(
            401, "Missing API key: send it as 'Authorization: Bearer sk-hub-…' or 'x-api-key'.", "missing_api_key"
        )
    identity = await keys.alookup(raw)
    if identity is None:
        raise RelayError(401, "Invalid API key: no TokenHub key matches it.", "invalid_api_key")
    refusal = identity.refusal()
    if refusal:
        raise RelayError(401, refusal, "invalid_api_key")
    return identity


def read_json(request) -> tuple[dict, int]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise _too_large() from None
    if len(raw) > settings.TOKENHUB_MAX_BODY_BYTES:
        raise _too_large()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RelayError(400, f"The request body is not valid JSON: {exc}.", "invalid_json") from None
    except RecursionError:
        raise RelayError(400, "The request body is nested too deeply to be read.", "invalid_json") from None
    if not isinstance(body, dict):
        raise RelayError(400, "The request body must be a JSON object.", "invalid_json")
    if _LONE_SURROGATE_HINT.search(raw) and _has_lone_surrogate(body):
        raise RelayError(400, "The request body holds a lone UTF-16 surrogate, which is not text.", "invalid_json")
    return body, len(raw)


# A surrogate as a \u escape or as (invalid) UTF-8 bytes: json.loads lets both through, and the body then
# cannot be encoded for the upstream (a UnicodeEncodeError there was the channel's 502 and health event).
_LONE_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _has_lone_surrogate(body: dict) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_large() -> RelayError:
    limit_mb = settings.TOKENHUB_MAX_BODY_BYTES / 1_000_000
    return RelayError(413, f"The request body is larger than TokenHub's limit of {limit_mb:g} MB.", "request_too_large")


def validate(operation: str, body: dict) -> None:
    try:
        validation.check(operation, body, needs_messages=OPERATIONS[operation][1])
    except validation.InvalidBody as exc:
        raise RelayError(400, str(exc), "invalid_request") from None


FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def forwarded_headers(request) -> dict[str, str]:
    """The caller's Anthropic headers an Anthropic channel is sent; visible ASCII only (they go on a wire)."""
    found = {}
    for name in FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is None:
            continue
        if not value.isascii() or not value.isprintable():
            raise RelayError(400, f"{name}: the header must be printable ASCII.", "invalid_request")
        found[name] = value
    return found


def _minute_key(prefix: str, key_id: int) -> tuple[str, int]:
    now = time.time()
    return f"{prefix}:{key_id}:{int(now // 60)}", 60 - int(now) % 60


def check_rate_limit(identity: KeyIdentity) -> None:
    """Per key requests and tokens per minute, in Redis when configured (process memory otherwise).

    Requests are counted on admission; tokens when a call settles (its real usage), so a key
    over its token budget is refused from its next call until the minute turns.
    """
    rpm, tpm = settings.TOKENHUB_KEY_RPM, settings.TOKENHUB_KEY_TPM
    if rpm:
        key, retry = _minute_key("rl", identity.key_id)
        count = 1 if cache.add(key, 1, timeout=70) else cache.incr(key)
        if count > rpm:
            raise RelayError(
                429,
                f"Rate limit reached for this key: {rpm} requests per minute. Retry in {retry} s.",
                "rate_limit_exceeded",
                {"retry-after": str(retry)},
            )
    if tpm:
        key, retry = _minute_key("tpm", identity.key_id)
        used = cache.get(key) or 0
        if used >= tpm:
            raise RelayError(
                429,
                f"Token rate limit reached for this key: {tpm} tokens per minute. Retry in {retry} s.",
                "rate_limit_exceeded",
                {"retry-after": str(retry)},
            )


def count_tokens_used(key_id: int, usage: Usage) -> None:
    if not settings.TOKENHUB_KEY_TPM:
        return
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    key, _retry = _minute_key("tpm", key_id)
    if not cache.add(key, tokens, timeout=70):
        cache.incr(key, tokens)


def requested_output(body: dict) -> int | None:
    """The caller's own cap on the answer's length: the largest of the fields set, since a translator
    or an upstream may read any one of them (validation.check made each a positive integer)."""
    caps = [body[name] for name in validation.TOKEN_LIMITS if body.get(name)]
    return max(caps) if caps else None


def output_budget(operation: str, body: dict, model: routing.ModelInfo) -> int:
    """The most output tokens one answer may have, which the hold pays for: the caller's cap (never
    above the model's maximum), else the model's maximum, else its default. When the caller set no
    cap, the upstream is told this one (upstream.bind_output), so it cannot answer beyond the hold."""
    if operation == "embeddings":
        return 0
    budget = requested_output(body) or model.max_output_tokens or model.default_output_tokens
    return min(budget, model.max_output_tokens) if model.max_output_tokens else budget


def held_output_tokens(operation: str, body: dict, budget: int) -> int:
    """Output tokens the hold covers: the budget for each of the `n` answers a chat call asks for."""
    return budget * ((body.get("n") or 1) if operation == "chat" else 1)


async def plan_routes(
    operation: str, identity: KeyIdentity, model_name: str
) -> tuple[routing.Plan, list[routing.Route]]:
    try:
        plan = await routing.aplan(model_name, identity.allowed_models)
    except routing.Refusal as refusal:
        raise RelayError(refusal.status, refusal.message, refusal.code) from None
    routes = [r for r in plan.routes if select.reachable(operation, r.api_format, r.provider)]
    if not routes:
        formats = ", ".join(sorted({r.api_format for r in plan.routes}))
        raise RelayError(
            503,
            f'"{model_name}" is served only by {formats}-format channels, which cannot take a '
            f"{operation} call from this endpoint.",
            "no_compatible_channel",
        )
    return plan, routes


def prepare(operation: str, body: dict, model: translate.ModelDefaults, routes, include_usage: bool, budget: int):
    """What each kind of channel among the routes is sent; a request that cannot be translated
    is refused here, before any money moves. `budget`: the output budget the hold pays for."""
    # Translators always write a cap (at most the budget); a passed-through body needs one if it has none.
    unbounded = budget if budget and not requested_output(body) else None
    prepared = {}
    for route in routes:
        key = select.key(operation, route.api_format, route.provider)
        if key in prepared:
            continue
        found = select.translation(operation, route.api_format, route.provider, model, body, include_usage)
        try:
            upstream_body = found.request(body) if found else body
        except translate.TranslationError as exc:
            raise RelayError(400, str(exc), "invalid_request") from None
        except (TypeError, AttributeError, KeyError, ValueError, IndexError):
            # validation.check covers the fields translators read; this catches a shape it missed.
            raise RelayError(
                400,
                "The request has a field of an unexpected type or shape, so it cannot be translated for "
                "this model's channels.",
                "invalid_request",
            ) from None
        upstream_operation = found.upstream_operation if found else operation
        prepared[key] = Prepared(upstream_operation, upstream_body, found, None if found else unbounded)
    return prepared


async def admit(request, operation: str, caller_format: str, request_id: str) -> Call:
    body, body_bytes = read_json(request)
    identity = await authenticate(request)
    validate(operation, body)
    forward = forwarded_headers(request)
    check_rate_limit(identity)
    plan, routes = await plan_routes(operation, identity, body["model"])
    model = translate.ModelDefaults(body["model"], plan.model.default_output_tokens, plan.model.max_output_tokens)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    await keys.atouch(identity.key_id)  # before the hold: nothing after it may fail outside the call's guard
    budget = output_budget(operation, body, plan.model)
    prepared = prepare(operation, body, model, routes, wants_usage, budget)
    prices = Prices(**plan.model.prices)
    # The hold is the most the call can cost (billing charges no more): bound both sides of it.
    input_bound = usage_of.input_token_bound(request.body, body, plan.model.context_window)
    estimate = estimate_max_cost(input_bound, held_output_tokens(operation, body, budget), prices)
    try:
        hold = await batched.hold(
            user_id=identity.user_id,
            amount=estimate,
            request_id=request_id,
            api_key_id=identity.key_id,
            model=plan.model.name,
            prices=prices,
        )
    except (ledger.InsufficientBalance, ledger.SpendCapReached) as exc:
        raise RelayError(402, f"{str(exc)[0].upper()}{str(exc)[1:]}.", "insufficient_quota") from None
    except DatabaseError:
        logger.exception("the hold for %s could not be written", request_id)
        raise RelayError(
            503,
            "TokenHub's ledger is unavailable; this call was not started and nothing was charged.",
            "ledger_unavailable",
            {"Retry-After": "5"},
        ) from None
    except batched.LedgerBehind as exc:
        raise RelayError(
            503,
            f"TokenHub is busy: {exc}. This call was not started and nothing was charged; retry in a few seconds.",
            "ledger_busy",
            {"Retry-After": "5"},
        ) from None
    return Call(
        request_id=request_id,
        operation=operation,
        caller_format=caller_format,
        identity=identity,
        body=body,
        body_bytes=body_bytes,
        stream=bool(body.get("stream")),
        plan=plan,
        routes=routes,
        prices=prices,
        forward_headers=forward,
        caller_wants_usage=wants_usage,
        model=model,
        prepared=prepared,
        hold=hold,
    )


# --- The call ----------------------------------------------------------------------------------
# Once a hold exists it ends in exactly one settlement or one release, whatever happens: the call's
# outcome arranges it (and sets `call.owned`), or the stream's pump does, and on every other exit —
# an exception, a cancelled request when the client leaves — `_end_unowned` releases it from a task
# of its own, so no await stands between the way out and the release that cancellation could cut.


async def handle(request, operation: str, caller_format: str):
    request_id = "req_" + uuid.uuid4().hex
    call: Call | None = None
    try:
        call = await admit(request, operation, caller_format, request_id)
        if call.stream:
            return await _serve(call)
        # The upstream makes a non-streamed answer whole whether or not the caller waits for it, so
        # it is billed either way: the call runs in a task of its own (which from here owns the hold)
        # and a caller leaving cancels only the wait.
        return await asyncio.shield(_hand_over(call, _serve(call)))
    except RelayError as exc:
        return _error(caller_format, exc.status, exc.message, exc.code, request_id, exc.headers)
    except Exception as exc:
        # Type and frames only: an exception's message may quote the data that caused it.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logger.error("relay call %s failed: %s\n%s", request_id, type(exc).__name__, frames)
        message = "TokenHub failed while handling this call; anything held for it is refunded. Retry, and report "
        return _error(caller_format, 500, message + "the x-request-id if it persists.", "internal_error", request_id)
    finally:
        if call is not None and not call.owned and not call.delegated:
            _end_unowned(call)


def _hand_over(call: Call, coroutine) -> asyncio.Task:
    """The rest of the call runs in a task of its own, which from here owns the hold.

    Whichever way that task ends (a task cancelled before its first step never runs its `finally`),
    its end releases the hold unless it arranged a settlement or release itself.
    """
    call.delegated = True
    task = in_background(coroutine)
    task.add_done_callback(lambda _task: call.owned or _end_unowned(call))
    return task


async def _serve(call: Call):
    outcome = await upstream.open_stream(call.plan, call.routes, call.prepared_for, call.forward_headers)
    if isinstance(outcome, upstream.UpstreamFailure):
        await _release_now(call, outcome.message)
        return _upstream_refusal(call, outcome)
    call.attempt = outcome
    if call.stream:
        pump = Pump(call, outcome)
        pump.start()  # the pump owns the hold from here
        return RelayStream(pump, call.request_id)
    return await _complete(call, outcome)


def _end_unowned(call: Call) -> None:
    """The call is leaving without having arranged its hold's end: release it in the background."""
    call.owned = True

    async def release() -> None:
        if call.attempt is not None:
            await call.attempt.response.aclose()
        await _release(call, "the call ended before its answer was complete (the client left or TokenHub failed)")

    in_background(release())


async def _release(call: Call, error: str) -> None:
    try:
        await batched.release(call.hold, error=error[:300], latency_ms=call.latency_ms())
    finally:
        if call.attempt is not None:
            _finish_limits(call.attempt)


async def _release_now(call: Call, error: str) -> None:
    """Release the hold before the caller's error answer goes out (so the refund is visible with it).

    The release runs as a task of its own: a client leaving cancels only the wait for it.
    """
    call.owned = True
    await asyncio.shield(in_background(_release(call, error)))


def _upstream_refusal(call: Call, outcome: upstream.UpstreamFailure) -> HttpResponse:
    if outcome.caller_fault_body is None:
        return _error(call.caller_format, outcome.status, outcome.message, "upstream_error", call.request_id)
    message = upstream_error_message(outcome.caller_fault_body)
    if outcome.channel_format == OPERATIONS[call.operation][0] and message is not None:
        # The caller's own format: the channel's error body as it sent it, but always as JSON.
        response = HttpResponse(outcome.caller_fault_body, status=outcome.status, content_type="application/json")
        response["x-request-id"] = call.request_id
        return response
    reason = message or "(no readable error message)"
    return _error(
        call.caller_format,
        outcome.status,
        f"The model's provider rejected the request: {reason}",
        "invalid_request",
        call.request_id,
    )


def _finish_limits(attempt: upstream.Attempt) -> None:
    """The serving channel's call is over (open_stream counted it against its limits)."""
    if attempt.route.limited:
        health.call_finished(attempt.route.channel_id)


def _error(api_format: str, status: int, message: str, code: str, request_id: str, headers=None) -> HttpResponse:
    response = error_response(api_format, status, message, code=code, headers=headers)
    response["x-request-id"] = request_id
    return response


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


def _usage_from_body(upstream_operation: str, data) -> Usage | None:
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    if upstream_operation == "messages":
        return usage_of.from_anthropic(data.get("usage"))
    return usage_of.from_openai(data.get("usage"))


def _estimated_usage(call: Call, output_tokens: int) -> Usage:
    return Usage(input_tokens=usage_of.estimate_tokens_from_bytes(call.body_bytes), output_tokens=output_tokens)


async def _settle(
    call: Call, attempt: upstream.Attempt, usage: Usage | None, status: str, estimated_output=0, error=""
):
    estimated = usage is None
    usage = usage or _estimated_usage(call, estimated_output)
    try:
        record = await _settle_retrying(
            call.hold,
            usage=usage,
            owner_id=attempt.route.owner_id,
            owner_cut=attempt.route.owner_cut,
            model=call.plan.model.name,
            channel=attempt.route.public_id,
            latency_ms=call.latency_ms(),
            status=status,
            estimated=estimated,
            error=error,
        )
    except Exception as exc:
        # A settlement the ledger refuses (a bug, bad data) must not leave the hold for the sweeper's
        # full refund half an hour later with nobody told: release it now and say so loudly.
        logger.error("settlement of %s failed (%s); releasing its hold", call.request_id, type(exc).__name__)
        await batched.release(call.hold, error=f"settlement failed: {type(exc).__name__}", latency_ms=call.latency_ms())
        raise
    finally:
        _finish_limits(attempt)
    count_tokens_used(call.identity.key_id, usage)
    # A health event only when the channel's own report (not TokenHub's estimate) is beyond doubt: more
    # than twice the most the call could cost. Within that, the bound may simply be short for a part
    # it cannot size (an image, a provider's own prompt), and callers must not be able to get an
    # honest channel paused with such calls; they are billed at most the hold either way.
    if not estimated and record.excess_usd > call.hold.amount:
        await upstream.over_reported(attempt.route, record)
    return record


SETTLE_ATTEMPTS = 3


async def _settle_retrying(hold: Hold, **details):
    """A settlement is idempotent: a deadlock or a dropped connection is tried again before giving up."""
    for attempt in range(1, SETTLE_ATTEMPTS + 1):
        try:
            return await batched.settle(hold, **details)
        except DatabaseError:
            if attempt == SETTLE_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)


async def _complete(call: Call, attempt: upstream.Attempt) -> HttpResponse:
    try:
        content = await attempt.response.aread()
    except httpx.HTTPError as exc:
        await _release_now(call, f"upstream read failed: {type(exc).__name__}")
        return _error(
            call.caller_format,
            502,
            "The upstream connection failed while sending the answer.",
            "upstream_error",
            call.request_id,
        )
    finally:
        await attempt.response.aclose()
    try:
        data = json.loads(content)
        usage = _usage_from_body(attempt.operation, data)
        found = call.prepared_for(attempt.route).translation
        if found is not None:
            content = json.dumps(found.response(data), separators=(",", ":")).encode()
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        RecursionError,
        OverflowError,
        ArithmeticError,
    ) as exc:
        # Not an answer in the channel's format (an HTML page, a truncated body…): nothing to bill.
        await _release_now(call, f"the upstream's answer could not be read: {type(exc).__name__}")
        return _error(
            call.caller_format,
            502,
            "The upstream sent an answer TokenHub could not read; nothing was charged.",
            "upstream_error",
            call.request_id,
        )
    output_guess = usage_of.estimate_tokens_from_bytes(len(content))
    # The answer goes out now and the settlement follows it in the background, as for streams:
    # the caller does not wait for the second transaction. The cost is the ledger's own formula.
    cost = min(cost_of(usage or _estimated_usage(call, output_guess), call.prices), call.hold.amount)  # the charge
    call.owned = True
    in_background(_settle(call, attempt, usage, UsageStatus.OK, estimated_output=output_guess))
    # 200 whatever 2xx the channel chose: its status is not the caller's business (a 205 must carry no body).
    response = HttpResponse(content, content_type="application/json")
    response["x-request-id"] = call.request_id
    response["x-tokenhub-cost"] = format(cost, "f")
    return response


# --- Streaming ---------------------------------------------------------------------------------


class RelayStream(StreamingHttpResponse):
    """Forwards what the pump queues; a disconnect's aclose() (or `abandon`) reaches the pump directly."""

    def __init__(self, pump: Pump, request_id: str):
        self._pump = pump
        self._generator = pump.forwarded()
        super().__init__(self._generator, content_type="text/event-stream")
        self["cache-control"] = "no-cache"
        self["x-accel-buffering"] = "no"
        self["x-request-id"] = request_id

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


def _inspect(call: Call, upstream_operation: str, state: StreamState, event) -> bool:
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


def _stream_error_event(call: Call, message: str) -> bytes:
    body = error_body(call.caller_format, 502, message, "upstream_error")
    if call.caller_format == ANTHROPIC:
        return encode(json.dumps(body), "error")
    return encode(json.dumps(body))


# Pumps and settlements outlive their request (a pump when the client leaves, to settle or drain);
# asyncio keeps only weak references to tasks, so they are held here until done.
_background: set[asyncio.Task] = set()


def in_background(coroutine) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_finished_in_background)
    return task


async def finish_background(seconds: float) -> int:
    """Let settlements (and the ledger writes they queued) finish before the worker stops.

    Returns how many tasks were still running after `seconds`; their holds stay open for the
    stale-hold sweeper to release.
    """
    deadline = time.monotonic() + seconds
    while _background or batched.busy():
        waiting = [*_background, *batched.busy()]
        _done, pending = await asyncio.wait(waiting, timeout=max(0.0, deadline - time.monotonic()))
        if pending and time.monotonic() >= deadline:
            logger.warning(
                "stopping with %d settlement(s) unfinished; the stale-hold sweeper will release them", len(pending)
            )
            return len(pending)
    return 0


def _finished_in_background(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The hold stays open and the stale-hold sweeper releases it; say so loudly.
        logger.error("a background settlement failed: %r", task.exception())


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

    def __init__(self, call: Call, attempt: upstream.Attempt):
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
        self.task = _hand_over(self.call, self.run())
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
            keep = _inspect(self.call, self.attempt.operation, self.state, event)
            if self.translator is not None:
                out += self.translator.feed(event)
            elif keep:
                out.append(event.raw)
        return b"".join(out)

    async def emit(self, data: bytes) -> None:
        if not self.detached:
            await self.queue.put(data)

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
                    self.error = "the upstream exceeded the total time limit"
                    await self.emit(
                        _stream_error_event(call, "The answer exceeded TokenHub's total time limit and was cut.")
                    )
                    break
            if not state.finished and not self.error:
                self.error = "the upstream ended the stream early"
                await self.emit(
                    _stream_error_event(call, "The upstream ended the stream before the answer was complete.")
                )
        except (httpx.HTTPError, SSEError) as exc:
            self.error = f"upstream failed mid-stream: {type(exc).__name__}"
            await self.emit(
                _stream_error_event(
                    call, "The upstream connection failed mid-stream; you are billed only for what was delivered."
                )
            )
        except asyncio.CancelledError:
            if not self.cutting:
                raise
            self.error = "cut: the worker was stopping"
            await self.emit(
                _stream_error_event(
                    call, "TokenHub is restarting and cut this answer here; you are billed for what was delivered."
                )
            )
        except Exception as exc:  # an event TokenHub cannot read (bad JSON, wrong types): the stream ends here
            self.error = f"unreadable upstream event: {type(exc).__name__}"
            await self.emit(
                _stream_error_event(
                    call, "The upstream sent an event TokenHub could not read; you are billed for what was delivered."
                )
            )
        finally:
            # The settlement is arranged first, with no await before it: a cancellation arriving in
            # what follows (the client leaving while the queue is full) cannot skip it.
            complete = state.finished and not self.error
            status = UsageStatus.OK if complete and not self.client_gone else UsageStatus.PARTIAL
            error = self.error
            if self.client_gone:
                error = "client disconnected; upstream drained" if complete else "client disconnected"
            call.owned = True
            if state.usage is None and state.content_events == 0:
                # Not one event and no usage (an HTML page, a stream dead at once): nothing to bill, as
                # for a plain answer TokenHub cannot read; the estimate would charge for the prompt.
                in_background(_release(call, error or "the upstream sent no events"))
            else:
                in_background(_settle(call, self.attempt, state.usage, status, state.content_events, error))
            await self.attempt.response.aclose()
            if not self.client_gone:
                await self.queue.put(None)  # end of the answer for the response generator

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
