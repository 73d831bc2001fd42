"""One /v1 call: admission → limits → route → hold → failover → stream or answer → settlement.

Each stage is a module of its own:
- relay/admission.py: read the body, authenticate the key, validate, plan the routes, prepare what
  each kind of channel is sent (translated when the formats differ);
- relay/limits.py: the key's requests and tokens per minute;
- billing.ledger (the batched hold): the most the call can cost, reserved against the caller's
  balance and the key's spend cap before anything is sent;
- relay/failover.py: the planned channels tried in order until one answers;
- relay/streaming.py (streams) or relay/answers.py (whole answers): the answer to the caller;
- relay/settlement.py: the hold's one settlement or release, from tasks that outlive the request.

Hot-path budget for a successful call on PostgreSQL + Redis: one cache read for the key, one
`get_many` for the channels' breaker and limit state, one statement for the hold and one for the
settlement, each shared with the worker's other calls of the moment (the ledger's batched path; its
per-call path where that cannot serve). No transaction is held while the answer streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

from django.db import DatabaseError

from accounts import keys
from billing import ledger
from billing.ledger import batched
from billing.pricing import Prices, estimate_max_cost

from . import admission, answers, failover, limits, observe, settlement, translate
from . import usage as usage_of
from .call import Call, RelayError
from .errors import error_response
from .streaming import Pump, RelayStream

logger = logging.getLogger(__name__)


async def handle(request, operation: str, caller_format: str):
    call: Call | None = None
    started = time.perf_counter()
    try:
        call = await admit(request, operation, caller_format)
        if call.stream:
            return await serve(call)
        # The upstream makes a non-streamed answer whole whether or not the caller waits for it, so
        # it is billed either way: the call runs in a task of its own (which from here owns the hold)
        # and a caller leaving cancels only the wait.
        return await asyncio.shield(settlement.hand_over(call, serve(call)))
    except RelayError as exc:
        observe.call_refused(request, caller_format, exc.status, exc.code, started)
        return error_response(caller_format, exc.status, exc.message, code=exc.code, headers=exc.headers)
    except Exception as exc:
        # Type and frames only: an exception's message may quote the data that caused it.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logger.error("relay call %s failed: %s\n%s", request.request_id, type(exc).__name__, frames)
        message = "TokenHub failed while handling this call; anything held for it is refunded. Retry, and report "
        return error_response(caller_format, 500, message + "the x-request-id if it persists.", code="internal_error")
    finally:
        if call is not None and not call.owned and not call.delegated:
            settlement.end_unowned(call)


async def admit(request, operation: str, caller_format: str) -> Call:
    """Everything before the upstream: a refusal here (RelayError) leaves nothing charged."""
    body, body_bytes = admission.read_json(request)
    identity = await admission.authenticate(request)
    admission.validate(operation, body)
    forward = admission.forwarded_headers(request)
    limits.check_rate_limit(identity.key_id)
    plan, routes = await admission.plan_routes(operation, identity, body["model"])
    model = translate.ModelDefaults(body["model"], plan.model.default_output_tokens, plan.model.max_output_tokens)
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    await keys.atouch(identity.key_id)  # before the hold: nothing after it may fail outside the call's guard
    budget = admission.output_budget(operation, body, plan.model)
    prepared = admission.prepare(operation, body, model, routes, wants_usage, budget)
    prices = Prices(**plan.model.prices)
    # The hold is the most the call can cost (billing charges no more): bound both sides of it.
    input_bound = usage_of.input_token_bound(request.body, body, plan.model.context_window)
    input_bound += admission.translation_growth(prepared, len(request.body))
    estimate = estimate_max_cost(input_bound, admission.held_output_tokens(operation, body, budget), prices)
    hold = await _hold(identity, estimate, request.request_id, plan.model.name, prices)
    return Call(
        request_id=request.request_id,
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


async def _hold(identity, amount, request_id: str, model: str, prices: Prices):
    try:
        return await batched.hold(
            user_id=identity.user_id,
            amount=amount,
            request_id=request_id,
            api_key_id=identity.key_id,
            model=model,
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


async def serve(call: Call):
    """The upstream's answer, from the first planned channel that gives one."""
    outcome = await failover.open_stream(
        call.plan, call.routes, call.prepared_for, call.forward_headers, held=call.hold.amount
    )
    call.attempts = outcome.attempts
    if isinstance(outcome, failover.UpstreamFailure):
        await settlement.release_now(call, outcome.message)
        return answers.upstream_refusal(call, outcome)
    call.attempt, call.answered_at = outcome, time.perf_counter()
    if call.stream:
        pump = Pump(call, outcome)
        pump.start()  # the pump owns the hold from here
        response = RelayStream(pump)
    else:
        response = await answers.complete(call, outcome)
    translation = call.prepared_for(outcome.route).translation
    for name, value in (translation.headers if translation else {}).items():
        response[name] = value  # what the translation had to leave out (tools only OpenAI runs)
    return response
