"""The end of a call's hold: one settlement or one release, from tasks that outlive the request.

Once a hold exists it ends in exactly one settlement or one release, whatever happens: the call's
outcome arranges it (and sets `call.owned`), or the task it was handed to does (`hand_over`: the
stream's pump, a non-streamed answer), and on every other exit — an exception, a cancelled request
when the client leaves — `end_unowned` releases it from a task of its own, so no await stands
between the way out and the release that cancellation could cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from django.db import DatabaseError

from billing import pricing
from billing.ledger import batched
from billing.models import Hold
from billing.pricing import Usage

from . import failover, limits, observe
from . import usage as usage_of
from .call import Call

logger = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 3

# Pumps and settlements outlive their request (a pump when the client leaves, to settle or drain);
# asyncio keeps only weak references to tasks, so they are held here until done.
_background: set[asyncio.Task] = set()


def in_background(coroutine) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_finished_in_background)
    return task


def _finished_in_background(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The hold stays open and the stale-hold sweeper releases it; say so loudly.
        logger.error("a background settlement failed: %r", task.exception())


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
    observe.flush()
    return 0


def hand_over(call: Call, coroutine) -> asyncio.Task:
    """The rest of the call runs in a task of its own, which from here owns the hold.

    Whichever way that task ends (a task cancelled before its first step never runs its `finally`),
    its end releases the hold unless it arranged a settlement or release itself.
    """
    call.delegated = True
    task = in_background(coroutine)
    task.add_done_callback(lambda _task: call.owned or end_unowned(call))
    return task


def end_unowned(call: Call) -> None:
    """The call is leaving without having arranged its hold's end: release it in the background."""
    call.owned = True

    async def release_it() -> None:
        if call.attempt is not None:
            await call.attempt.response.aclose()
        await release(call, "the call ended before its answer was complete (the client left or TokenHub failed)")

    in_background(release_it())


async def release(call: Call, error: str) -> None:
    try:
        record = await batched.release(call.hold, error=error[:300], latency_ms=call.latency_ms())
        observe.call_ended(call, record)
    finally:
        if call.attempt is not None:
            limits.channel_call_finished(call.attempt)


async def release_now(call: Call, error: str) -> None:
    """Release the hold before the caller's error answer goes out (so the refund is visible with it).

    The release runs as a task of its own: a client leaving cancels only the wait for it.
    """
    call.owned = True
    await asyncio.shield(in_background(release(call, error)))


def estimated_usage(call: Call, output_tokens: int) -> Usage:
    """What a call is billed when the upstream reported no usage: the body's size and what was sent."""
    return Usage(input_tokens=usage_of.estimate_tokens_from_bytes(call.body_bytes), output_tokens=output_tokens)


def is_own_use(call: Call, attempt: failover.Attempt) -> bool:
    return call.identity.user_id == attempt.route.owner_id


def charge(call: Call, attempt: failover.Attempt, usage: Usage) -> Decimal:
    """What the caller is charged for `usage`: the ledger's formula (the prices captured at the hold, at
    most the hold), less the channel's cut on the owner's own call. The answer's x-tokenhub-cost too."""
    charged = min(pricing.cost_of(usage, call.prices), call.hold.amount)
    return pricing.own_use_cost(charged, attempt.route.owner_cut) if is_own_use(call, attempt) else charged


def own_use(call: Call, attempt: failover.Attempt, usage: Usage) -> dict:
    """The settlement's payee details: the channel's owner and cut, or, for the owner's own call, the
    catalog price less the cut and nobody to pay a share to."""
    if not is_own_use(call, attempt):
        return {"owner_id": attempt.route.owner_id, "owner_cut": attempt.route.owner_cut}
    return {"owner_id": None, "cost": charge(call, attempt, usage), "upstream": pricing.cost_of(usage, call.prices)}


def upstream_spend(call: Call, attempt: failover.Attempt, usage: Usage) -> Decimal:
    """What the call used of its channel's upstream at the catalog's prices, as the upstream reported it:
    in full, above the hold too (the owner's upstream bills it; the caller is charged at most the hold),
    and an owner's own call in full (channels_app/spend.py counts it against the owner's limits)."""
    if attempt.reservation is None:
        return Decimal(0)
    return pricing.cost_of(usage, call.prices)


async def settle(call: Call, attempt: failover.Attempt, usage: Usage | None, status: str, estimated_output=0, error=""):
    estimated = usage is None
    usage = usage or estimated_usage(call, estimated_output)
    try:
        record = await _settle_retrying(
            call.hold,
            usage=usage,
            **own_use(call, attempt, usage),
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
        limits.channel_call_finished(attempt, upstream_spend(call, attempt, usage))
    limits.count_tokens_used(call.identity.key_id, usage)
    observe.call_ended(call, record)
    # A health event only when the channel's own report (not TokenHub's estimate) is beyond doubt: more
    # than twice the most the call could cost. Within that, the bound may simply be short for a part
    # it cannot size (an image, a provider's own prompt), and callers must not be able to get an
    # honest channel paused with such calls; they are billed at most the hold either way.
    if not estimated and record.excess_usd > call.hold.amount:
        await failover.over_reported(attempt.route, record)
    return record


async def _settle_retrying(hold: Hold, **details):
    """A settlement is idempotent: a deadlock or a dropped connection is tried again before giving up."""
    for attempt in range(1, SETTLE_ATTEMPTS + 1):
        try:
            return await batched.settle(hold, **details)
        except DatabaseError:
            if attempt == SETTLE_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
