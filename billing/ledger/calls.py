"""The per-call path of a relayed call's three stages: hold (pre-deduct), settle, release (refund).

One database transaction per operation, in plain SQL (`statements`): the ORM spends ~300 µs of
Python per statement here. On PostgreSQL the relay goes through `batched` first, which writes the
same rows for many calls in one statement and falls back here for whatever it cannot do; this path
explains every refusal and creates missing accounts. Async callers (the relay) use the `a*`
variants: the whole transaction runs in a worker thread, which gives its connection back at once,
so no connection is held while a stream is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ApiKey

from ..models import ZERO, AccountKind, Hold, HoldStatus, TransactionKind, UsageRecord, UsageStatus
from ..pricing import Prices, Usage, cost_of, split
from . import statements as sql
from .accounts import accounts, balance_of, hold_spec, move_cached, user_spec
from .errors import InsufficientBalance, SpendCapReached, money
from .posting import post, retry_safe


def hold(
    *,
    user_id: int,
    amount: Decimal,
    request_id: str,
    api_key_id: int | None = None,
    model: str = "",
    prices: Prices | None = None,
) -> Hold:
    """Pre-deduct: move `amount` from the user's balance to their holds. Idempotent by request id.

    The hold also counts against its key's calls in flight (`reserved_usd`), in the same transaction
    and by the same kind of conditional UPDATE as the balance: a key with a spend cap is refused
    once what it has spent plus what it has in flight would pass the cap. `prices` are captured on
    the hold; `settle` bills the real usage at them.
    """
    amount = money(amount)
    if amount < 0:
        raise ValueError("a hold cannot be negative")

    def operation() -> Hold:
        # Idempotent before anything moves: a hold already written for this request id (a batch that
        # committed but whose answer was lost, a retry) is the answer, not a second debit refused.
        existing = Hold.objects.filter(request_id=request_id).first()
        if existing is not None:
            return existing
        captured = prices.as_dict() if prices else None
        legs = []
        if amount:
            debited = move_cached(user_spec(user_id), -amount, require_funds=True)
            if debited is None:
                raise InsufficientBalance(need=amount, have=balance_of(user_id))
            legs = [(debited, -amount), (move_cached(hold_spec(user_id), amount), amount)]
            # After the balance rows, as every path locks them: balance, holds, then the key.
            if api_key_id is not None and not sql.reserve(api_key_id, amount):
                raise _spend_cap_reached(api_key_id, amount)
        # A second hold for this request id fails on the unique key and returns the first one.
        post(TransactionKind.HOLD, legs, idempotency_key=f"hold:{request_id}", memo=model)
        hold_id = sql.insert_hold(
            request_id=request_id, user_id=user_id, api_key_id=api_key_id, model=model, amount=amount, prices=captured
        )
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

    return retry_safe(operation, lambda: Hold.objects.filter(request_id=request_id).first())


def _spend_cap_reached(api_key_id: int, amount: Decimal) -> SpendCapReached:
    key = ApiKey.objects.filter(pk=api_key_id).values("spend_cap_usd", "spent_usd", "reserved_usd").get()
    return SpendCapReached(cap=key["spend_cap_usd"], spent=key["spent_usd"], in_flight=key["reserved_usd"], need=amount)


def settle(*, request_id: str, usage: Usage, **details) -> UsageRecord:
    """Capture the cost from the hold, release the rest, pay the owner's cut and the platform.

    The cost is `usage` at the prices captured on the hold (rounded once, here), unless an
    explicit `cost` is given; the charge is at most the hold. Writes the call's usage record.
    Idempotent: settling a closed hold again returns the first record and changes nothing.
    Details: cost, upstream, owner_id, owner_cut, model, channel, latency_ms, status, estimated, error.
    `upstream` is what the call used of its channel's upstream at the catalog's prices, when that is
    not `cost` (an owner's own call is charged less the cut but used the upstream in full).
    """
    return _settle(request_id=request_id, usage=usage, **details)


def _settle(
    *,
    request_id: str,
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
) -> UsageRecord:
    with transaction.atomic():
        found = sql.lock_hold(request_id)
        if found is None:
            raise Hold.DoesNotExist(f"no hold for request {request_id}")
        hold_id, user_id, api_key_id, held, prices, hold_status, hold_model = found
        if hold_status != HoldStatus.OPEN:
            return UsageRecord.objects.get(request_id=request_id)
        if cost is None:
            if prices is None:
                raise ValueError(f"hold {request_id} captured no prices; pass an explicit cost")
            cost = cost_of(usage, Prices.from_dict(prices))
        cost = money(cost)
        if cost < 0:
            raise ValueError("a cost cannot be negative")
        figures = settlement_figures(held, cost, owner_id, owner_cut)
        charged, refund = figures.charged, figures.refund
        owner_share, platform_share = figures.owner_share, figures.platform_share
        legs: list[tuple[int, Decimal]] = []
        record = usage_record_values(
            request_id=request_id,
            user_id=user_id,
            api_key_id=api_key_id,
            model=model or hold_model,
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
        kind, closed_status = figures.kind, figures.hold_status
        # Rows in the same order as hold() takes them (user, hold, key): no deadlock between the two.
        if refund:
            legs.append((move_cached(user_spec(user_id), refund), refund))
        if held:
            legs.append((sql.move(f"hold:{user_id}", -held), -held))
        payees = {"platform:revenue": ("platform:revenue", AccountKind.REVENUE, None)}
        if owner_share:
            payees[f"owner:{owner_id}"] = (f"owner:{owner_id}", AccountKind.OWNER, owner_id)
        ids = sql.account_ids(list(payees))
        if len(ids) < len(payees):
            ids = {a.code: a.pk for a in accounts(*payees.values())}
        legs.append((ids["platform:revenue"], platform_share))
        if owner_share:
            legs.append((ids[f"owner:{owner_id}"], owner_share))
        txn_id = post(kind, legs, idempotency_key=f"settle:{request_id}", memo=model or hold_model)
        sql.close_hold(hold_id, closed_status)
        if api_key_id and held:
            sql.settle_key(api_key_id, held, charged)  # last, as hold() takes the key's row
        return sql.insert_usage({**record, "transaction_id": txn_id})


@dataclass(frozen=True)
class SettlementFigures:
    charged: Decimal  # taken from the hold: never more than it
    refund: Decimal  # the rest of the hold, back to the balance
    owner_share: Decimal
    platform_share: Decimal

    @property
    def kind(self) -> str:
        return TransactionKind.SETTLE if self.charged else TransactionKind.RELEASE

    @property
    def hold_status(self) -> str:
        return HoldStatus.SETTLED if self.charged else HoldStatus.RELEASED


def usage_record_values(
    *,
    request_id: str,
    user_id: int,
    api_key_id: int | None,
    model: str,
    channel: str,
    owner_id: int | None,
    usage: Usage,
    figures: SettlementFigures,
    cost: Decimal,
    upstream: Decimal,
    latency_ms: int,
    status: str,
    estimated: bool,
    error: str,
) -> dict:
    """A settled call's usage record, as column values (both settlement paths write these)."""
    return {
        "request_id": request_id,
        "user_id": user_id,
        "api_key_id": api_key_id,
        "model": model,
        "channel": channel,
        "owner_id": owner_id,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": figures.charged,
        "owner_cut_usd": figures.owner_share,
        "platform_usd": figures.platform_share,
        "excess_usd": cost - figures.charged,
        "upstream_usd": upstream,
        "latency_ms": latency_ms,
        "status": status,
        "estimated": estimated,
        "error": error[:300],
    }


def settlement_figures(held: Decimal, cost: Decimal, owner_id: int | None, owner_cut: Decimal) -> SettlementFigures:
    """Who gets what when a hold of `held` settles at `cost`.

    The hold is the most a call can cost: it was computed from the call's own bounds (its bytes,
    its output budget, which the upstream is told), so a cost above it is the upstream reporting
    more than it could have done. That excess is recorded on the usage record, never billed.
    """
    charged = min(cost, held)
    refund = held - charged
    owner_share, platform_share = split(charged, owner_cut if owner_id else ZERO)
    return SettlementFigures(charged, refund, owner_share, platform_share)


def release(
    *, request_id: str, status: str = UsageStatus.FAILED, error: str = "", channel: str = "", latency_ms: int = 0
) -> UsageRecord:
    """Refund: give the whole hold back (a failure before any output). Idempotent."""
    return settle(
        request_id=request_id,
        cost=ZERO,
        usage=Usage(),
        status=status,
        error=error,
        channel=channel,
        latency_ms=latency_ms,
    )


def release_stale_holds(*, older_than_seconds: int) -> int:
    """Release holds a crashed worker left open. Each release is idempotent, so overlapping runs are safe."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    released = 0
    for request_id in Hold.objects.filter(status=HoldStatus.OPEN, created_at__lt=cutoff).values_list(
        "request_id", flat=True
    ):
        record = release(
            request_id=request_id, status=UsageStatus.EXPIRED, error="hold expired: the call never settled"
        )
        released += record.status == UsageStatus.EXPIRED
    return released


def _in_worker_thread(function):
    """Run a ledger function in a worker thread and return its pooled connection at once."""

    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


ahold = _in_worker_thread(hold)
asettle = _in_worker_thread(settle)
arelease = _in_worker_thread(release)
