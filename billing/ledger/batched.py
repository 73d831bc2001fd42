"""The batched path: the relay's holds and settlements on PostgreSQL, one statement and one commit a batch.

Why: every call of a user moves the same two cached balances (`user:N`, `hold:N`). As one database
transaction per call, concurrent calls queue on those rows' locks until each commit is done (measured on
the bench machine: about 200 hold+settle pairs a second at 50 callers, against 400 for one caller), and
each call hops to a thread for Django's sync connection. Here each worker has one async connection per
kind of write; while a batch commits the next one gathers, so under load many calls share a statement
and a commit (1,500 pairs a second at 50 callers in the same measurement), and a lone call waits for
nothing: it is a batch of one.

The ledger's rules hold inside a batch: each call is its own ledger transaction whose entries sum to
zero; the debit of a balance is a conditional UPDATE; balance rows are locked in one order (users'
balances, then their holds, by code), as the per-call path (`calls`) does; and `tokenhub_ledger_check`
aborts the whole statement (so the batch's one database transaction) if any transaction would be short
of a leg.

A key's open holds count against its spend cap (`reserved_usd`) in the same statement, by the same
rule as the balance: all of a key's holds in the batch fit its cap, or none go on. Whatever a batch
cannot do — a short balance, a spend cap the batch's holds would pass, accounts not created yet, a hold
already closed, a failed statement — comes back as None and that call takes the per-call path
(`calls`), which explains the refusal or repairs the state. So this path only ever makes the common
case cheaper; the per-call path stays the authority. The statements are in `batch_statements`, the
gathering in `batcher`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ..models import ZERO, Hold, HoldStatus, UsageRecord, UsageStatus
from ..pricing import Prices, Usage, cost_of
from . import calls
from .batcher import busy, close, connection_params, enabled, for_this_loop, stats, track
from .errors import LedgerBehind, money

__all__ = ["LedgerBehind", "busy", "close", "connection_params", "enabled", "hold", "release", "settle", "stats"]


async def hold(
    *,
    user_id: int,
    amount: Decimal,
    request_id: str,
    api_key_id: int | None,
    model: str,
    prices: Prices,
) -> Hold:
    """`calls.hold`, batched when it can be; raises what the per-call path raises.

    A caller that leaves while its hold is being written (a client disconnect cancels the request)
    does not leave the money held until the sweeper comes: the hold is released once it exists.
    """
    amount = money(amount)
    batching = enabled()
    if batching:
        # Nobody waits for a settlement, so without this a database that stops writing them would let
        # finished calls pile up in memory, each with its hold open, for as long as callers keep coming.
        await for_this_loop().settles.wait_for_room()
    if batching and amount > 0:
        captured = prices.as_dict()
        row = {
            "request_id": request_id,
            "user_id": user_id,
            "api_key_id": api_key_id,
            "model": model,
            "amount": amount,
            "prices": captured,
        }

        def made(hold_id: int | None) -> Hold | None:
            if hold_id is None:
                return None
            return Hold(
                id=hold_id,
                request_id=request_id,
                user_id=user_id,
                api_key_id=api_key_id,
                model=model,
                amount=amount,
                prices=captured,
                status=HoldStatus.OPEN,
            )

        hold_id = await _shielded(for_this_loop().holds.enqueue(row), made)
        if hold_id is not None:
            return made(hold_id)
    # The per-call path (in a worker thread): explains a refusal, creates missing accounts.
    writing = asyncio.ensure_future(
        calls.ahold(
            user_id=user_id,
            amount=amount,
            request_id=request_id,
            api_key_id=api_key_id,
            model=model,
            prices=prices,
        )
    )
    return await _shielded(writing, lambda hold: hold)


async def _shielded(writing: asyncio.Future, held):
    """Await a hold being written; if the caller leaves meanwhile, release the hold once it exists.

    `held(result)` turns the write's result into the Hold to release (or None: nothing was held).
    """
    try:
        return await asyncio.shield(writing)
    except asyncio.CancelledError:
        writing.add_done_callback(lambda done: _give_back(done, held))
        raise


def _give_back(writing: asyncio.Future, held) -> None:
    if writing.cancelled() or writing.exception() is not None:
        return
    hold = held(writing.result())
    if hold is None:
        return  # the batch declined: nothing was held
    track(asyncio.ensure_future(release(hold, error="the caller left before the call started")))


async def settle(
    hold: Hold,
    *,
    usage: Usage,
    cost: Decimal | None = None,
    upstream: Decimal | None = None,
    owner_id: int | None = None,
    owner_cut: Decimal = ZERO,
    model: str = "",
    channel: str = "",
    latency_ms: int = 0,
    status: str = UsageStatus.OK,
    estimated: bool = False,
    error: str = "",
    urgent: bool = False,
) -> UsageRecord:
    """`calls.settle` for the relay's own hold, batched when it can be.

    Settlements gather for a moment before their statement (nobody waits for them: the answer has
    gone out); an `urgent` one is written at once, with whatever has gathered so far.
    """
    details = {
        "upstream": upstream,
        "owner_id": owner_id,
        "owner_cut": owner_cut,
        "model": model,
        "channel": channel,
        "latency_ms": latency_ms,
        "status": status,
        "estimated": estimated,
        "error": error,
    }
    if cost is None and hold.prices is not None:
        cost = cost_of(usage, Prices.from_dict(hold.prices))
    if enabled() and cost is not None:
        cost = money(cost)
        figures = calls.settlement_figures(hold.amount, cost, owner_id, owner_cut)
        record = calls.usage_record_values(
            request_id=hold.request_id,
            user_id=hold.user_id,
            api_key_id=hold.api_key_id,
            model=model or hold.model,
            channel=channel,
            owner_id=owner_id,
            usage=usage,
            figures=figures,
            cost=cost,
            upstream=cost if upstream is None else money(upstream),
            latency_ms=latency_ms,
            status=status,
            estimated=estimated,
            error=error,
        )
        row = {
            **record,
            "hold_id": hold.id,
            "held": hold.amount,
            "refund": figures.refund,
            "kind": figures.kind,
            "hold_status": figures.hold_status,
        }
        record_id = await for_this_loop().settles.enqueue(row, urgent=urgent)
        if record_id is not None:
            return UsageRecord(id=record_id, **record)
    return await calls.asettle(request_id=hold.request_id, usage=usage, cost=cost, **details)


async def release(
    hold: Hold, *, status: str = UsageStatus.FAILED, error: str = "", channel: str = "", latency_ms: int = 0
) -> UsageRecord:
    """Refund the whole hold (a failure before any output), at once: the caller's error answer waits for it."""
    return await settle(
        hold,
        usage=Usage(),
        cost=ZERO,
        status=status,
        error=error,
        channel=channel,
        latency_ms=latency_ms,
        urgent=True,
    )
