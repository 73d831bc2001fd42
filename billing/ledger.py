"""Money's writer, one transaction per operation; the relay's holds and settlements on PostgreSQL
also go through billing/batched.py, which falls back here for anything it cannot do. On PostgreSQL
the database refuses any transaction whose entries do not sum to zero, whoever writes it.

Every balance change is one `Transaction` whose entries sum to zero, posted in
one database transaction. Cached balances (a user's spendable balance and their
holds) change in that same transaction, debits by a conditional UPDATE that
must match exactly one row, so concurrent calls can never overdraw. Every
operation that can be retried is idempotent: by request id, by (user, day), by
code, or by a compare-and-set on a status column.

Async callers (the relay) use the `a*` variants: each runs its whole
transaction in a worker thread and gives the connection back before returning,
so no connection is held while a stream is open.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import ApiKey

from . import sql
from .models import (
    CACHED_KINDS,
    ZERO,
    Account,
    AccountKind,
    CheckIn,
    Entry,
    Hold,
    HoldStatus,
    Payout,
    PayoutStatus,
    RedemptionCode,
    Transaction,
    TransactionKind,
    UsageRecord,
    UsageStatus,
)
from .pricing import Prices, Usage, cost_of, quantize, split, usd


class LedgerError(Exception):
    """A refused money operation; the message is safe to show to the user."""


class InsufficientBalance(LedgerError):
    def __init__(self, need: Decimal, have: Decimal):
        self.need, self.have = need, have
        super().__init__(f"insufficient balance: need {usd(need)}, have {usd(have)}")


class SpendCapReached(LedgerError):
    def __init__(self, cap: Decimal, spent: Decimal, in_flight: Decimal, need: Decimal):
        self.cap, self.spent, self.in_flight, self.need = cap, spent, in_flight, need
        super().__init__(
            f"this key's spend cap is reached (counting calls in flight): cap {usd(cap)}, spent {usd(spent)}, "
            f"in flight {usd(in_flight)}, this call may cost up to {usd(need)}"
        )


class CodeRefused(LedgerError):
    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def money(amount) -> Decimal:
    """`amount` as a Decimal, refusing more than 8 decimal places."""
    amount = Decimal(amount) if not isinstance(amount, Decimal) else amount
    if amount != quantize(amount):
        raise ValueError(f"amount {amount} has more than 8 decimal places")
    return amount


# --- Accounts ---------------------------------------------------------------------


def _account(code: str, kind: str, user_id: int | None = None) -> Account:
    balance = ZERO if kind in CACHED_KINDS else None
    account, _created = Account.objects.get_or_create(
        code=code, defaults={"kind": kind, "user_id": user_id, "balance": balance}
    )
    return account


def _accounts(*specs: tuple[str, str, int | None]) -> list[Account]:
    """Several accounts in one query (creating any that do not exist yet): (code, kind, user id) each."""
    found = {a.code: a for a in Account.objects.filter(code__in=[code for code, _kind, _user in specs])}
    return [found.get(code) or _account(code, kind, user_id) for code, kind, user_id in specs]


def _user_spec(user_id: int) -> tuple[str, str, int]:
    return f"user:{user_id}", AccountKind.USER, user_id


def _hold_spec(user_id: int) -> tuple[str, str, int]:
    return f"hold:{user_id}", AccountKind.HOLD, user_id


def platform_account(kind: str) -> Account:
    return _account(f"platform:{kind}", kind)


def user_account(user_id: int) -> Account:
    return _account(f"user:{user_id}", AccountKind.USER, user_id)


def hold_account(user_id: int) -> Account:
    return _account(f"hold:{user_id}", AccountKind.HOLD, user_id)


def owner_account(user_id: int) -> Account:
    return _account(f"owner:{user_id}", AccountKind.OWNER, user_id)


def payout_account(user_id: int) -> Account:
    return _account(f"payout:{user_id}", AccountKind.PAYOUT, user_id)


def derived_balance(account: Account) -> Decimal:
    # quantize: SQLite sums decimals as floats.
    return quantize(Entry.objects.filter(account=account).aggregate(total=Coalesce(Sum("amount"), ZERO))["total"])


def balance_of(user_id: int) -> Decimal:
    """The user's spendable balance (holds in flight excluded)."""
    account = Account.objects.filter(code=f"user:{user_id}").only("balance").first()
    return account.balance if account else ZERO


def earnings_of(user_id: int) -> Decimal:
    """A channel owner's earnings not yet moved to their balance or paid out."""
    account = Account.objects.filter(code=f"owner:{user_id}").first()
    return derived_balance(account) if account else ZERO


# --- Posting --------------------------------------------------------------------


def _post(kind: str, legs, *, idempotency_key: str | None = None, memo: str = "", actor: str = "system") -> Transaction:
    """Write one balanced transaction. Call inside `transaction.atomic()`.

    Cached balances change here too, in primary-key order (no deadlocks);
    a debit is `UPDATE … WHERE balance >= amount` and must match one row.
    """
    totals: dict[int, Decimal] = defaultdict(Decimal)
    accounts: dict[int, Account] = {}
    for account, amount in legs:
        totals[account.pk] += money(amount)
        accounts[account.pk] = account
    if sum(totals.values(), ZERO) != ZERO:
        raise ValueError(f"unbalanced {kind} transaction: legs sum to {sum(totals.values(), ZERO)}")
    txn = Transaction.objects.create(kind=kind, idempotency_key=idempotency_key, memo=memo[:200], actor=actor[:120])
    Entry.objects.bulk_create(
        Entry(transaction=txn, account_id=pk, amount=amount) for pk, amount in sorted(totals.items()) if amount
    )
    for pk in sorted(totals):
        amount = totals[pk]
        if not amount or accounts[pk].kind not in CACHED_KINDS:
            continue
        # sql.move: the one conditional debit, exact at 8 places on SQLite too.
        if sql.move(accounts[pk].code, amount, require_funds=amount < 0) is None:
            have = Account.objects.get(pk=pk).balance
            raise InsufficientBalance(need=-amount, have=have)
    return txn


def _retry_safe(operation, find_existing):
    """Run `operation` atomically; if a concurrent twin won the unique key, return what it made."""
    try:
        with transaction.atomic():
            return operation()
    except IntegrityError:
        existing = find_existing()
        if existing is None:
            raise
        return existing


# --- The three stages of a relayed call -------------------------------------------


def _cached_account(spec: tuple[str, str, int], amount: Decimal, *, require_funds: bool = False) -> int | None:
    """Move a cached balance by code, creating the user's accounts on first use."""
    code = spec[0]
    account_id = sql.move(code, amount, require_funds=require_funds)
    if account_id is None and not Account.objects.filter(code=code).exists():
        _accounts(spec)
        account_id = sql.move(code, amount, require_funds=require_funds)
    return account_id


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
        captured = prices.as_dict() if prices else None
        legs = []
        if amount:
            debited = _cached_account(_user_spec(user_id), -amount, require_funds=True)
            if debited is None:
                raise InsufficientBalance(need=amount, have=balance_of(user_id))
            legs = [(debited, -amount), (_cached_account(_hold_spec(user_id), amount), amount)]
            # After the balance rows, as every path locks them: balance, holds, then the key.
            if api_key_id is not None and not sql.reserve(api_key_id, amount):
                raise _spend_cap_reached(api_key_id, amount)
        # A second hold for this request id fails on the unique key and returns the first one.
        sql.post(TransactionKind.HOLD, legs, idempotency_key=f"hold:{request_id}", memo=model)
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

    return _retry_safe(operation, lambda: Hold.objects.filter(request_id=request_id).first())


def _spend_cap_reached(api_key_id: int, amount: Decimal) -> SpendCapReached:
    key = ApiKey.objects.filter(pk=api_key_id).values("spend_cap_usd", "spent_usd", "reserved_usd").get()
    return SpendCapReached(cap=key["spend_cap_usd"], spent=key["spent_usd"], in_flight=key["reserved_usd"], need=amount)


def settle(*, request_id: str, usage: Usage, **details) -> UsageRecord:
    """Capture the cost from the hold, release the rest, pay the owner's cut and the platform.

    The cost is `usage` at the prices captured on the hold (rounded once, here), unless an
    explicit `cost` is given; the charge is at most the hold. Writes the call's usage record.
    Idempotent: settling a closed hold again returns the first record and changes nothing.
    Details: cost, owner_id, owner_cut, model, channel, latency_ms, status, estimated, error.
    """
    return _settle(request_id=request_id, usage=usage, **details)


def _settle(
    *,
    request_id: str,
    usage: Usage,
    cost: Decimal | None = None,
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
            latency_ms=latency_ms,
            status=status,
            estimated=estimated,
            error=error,
        )
        kind, closed_status = figures.kind, figures.hold_status
        # Rows in the same order as hold() takes them (user, hold, key): no deadlock between the two.
        if refund:
            legs.append((_cached_account(_user_spec(user_id), refund), refund))
        if held:
            legs.append((sql.move(f"hold:{user_id}", -held), -held))
        payees = {"platform:revenue": ("platform:revenue", AccountKind.REVENUE, None)}
        if owner_share:
            payees[f"owner:{owner_id}"] = (f"owner:{owner_id}", AccountKind.OWNER, owner_id)
        ids = sql.account_ids(list(payees))
        if len(ids) < len(payees):
            ids = {a.code: a.pk for a in _accounts(*payees.values())}
        legs.append((ids["platform:revenue"], platform_share))
        if owner_share:
            legs.append((ids[f"owner:{owner_id}"], owner_share))
        txn_id = sql.post(kind, legs, idempotency_key=f"settle:{request_id}", memo=model or hold_model)
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


# --- Free balance -------------------------------------------------------------------


def grant(
    *, user_id: int, amount: Decimal, memo: str, actor: str, kind: str = TransactionKind.ADJUST, idempotency_key=None
) -> Transaction:
    """Credit (or, with a negative amount, debit — never below zero) a user's balance."""
    amount = money(amount)
    if not amount:
        raise ValueError("a grant of zero changes nothing")
    source = platform_account(AccountKind.ADJUSTMENTS if kind == TransactionKind.ADJUST else AccountKind.PROMOTIONS)
    legs = [(source, -amount), (user_account(user_id), amount)]

    def operation() -> Transaction:
        if idempotency_key and (existing := Transaction.objects.filter(idempotency_key=idempotency_key).first()):
            return existing
        return _post(kind, legs, idempotency_key=idempotency_key, memo=memo, actor=actor)

    return _retry_safe(operation, lambda: Transaction.objects.filter(idempotency_key=idempotency_key).first())


def checkin(*, user_id: int, day: date, amount: Decimal) -> CheckIn:
    """The daily reward: one per user per UTC day however often it is claimed."""
    amount = money(amount)

    def operation() -> CheckIn:
        existing = CheckIn.objects.filter(user_id=user_id, day=day).first()
        if existing is not None:
            return existing
        txn = _post(
            TransactionKind.CHECKIN,
            [(platform_account(AccountKind.PROMOTIONS), -amount), (user_account(user_id), amount)],
            idempotency_key=f"checkin:{user_id}:{day.isoformat()}",
            memo=f"Daily check-in {day.isoformat()}",
        )
        return CheckIn.objects.create(user_id=user_id, day=day, amount=amount, transaction=txn)

    return _retry_safe(operation, lambda: CheckIn.objects.filter(user_id=user_id, day=day).first())


def normalise_code(text: str) -> str:
    return "".join(text.split()).upper()


def redeem(*, user_id: int, code: str, now: datetime | None = None) -> RedemptionCode:
    """Redeem a code once: of two users racing for it, exactly one wins."""
    now = now or timezone.now()
    with transaction.atomic():
        found = RedemptionCode.objects.select_related("batch").filter(code=normalise_code(code)).first()
        if found is None:
            raise CodeRefused("unknown", "That code does not exist. Check it for typos.")
        if found.redeemed_by_id is not None:
            raise CodeRefused("used", "That code has already been used.")
        if found.batch.expires_at is not None and found.batch.expires_at <= now:
            raise CodeRefused("expired", f"That code expired on {found.batch.expires_at:%Y-%m-%d}.")
        claimed = RedemptionCode.objects.filter(pk=found.pk, redeemed_by__isnull=True).update(
            redeemed_by_id=user_id, redeemed_at=now
        )
        if not claimed:
            raise CodeRefused("used", "That code has already been used.")
        txn = _post(
            TransactionKind.REDEEM,
            [(platform_account(AccountKind.CODES), -found.batch.amount), (user_account(user_id), found.batch.amount)],
            idempotency_key=f"redeem:{found.pk}",
            memo=f"Code from batch {found.batch.label}"[:200],
        )
        RedemptionCode.objects.filter(pk=found.pk).update(transaction=txn)
        found.refresh_from_db()
        return found


# --- Owners' earnings and payouts ---------------------------------------------------


def _locked_earnings(owner_id: int) -> tuple[Account, Decimal]:
    """Lock the owner's earnings account row (the serialisation point), then sum its entries."""
    account = owner_account(owner_id)
    Account.objects.select_for_update().filter(pk=account.pk).first()
    return account, derived_balance(account)


def move_earnings_to_balance(*, owner_id: int, amount: Decimal | None = None) -> Transaction:
    with transaction.atomic():
        earnings, available = _locked_earnings(owner_id)
        amount = available if amount is None else money(amount)
        if amount <= 0 or amount > available:
            raise LedgerError(f"You can move between $0 and {usd(available)} of earnings.")
        return _post(
            TransactionKind.EARNINGS_TO_BALANCE,
            [(earnings, -amount), (user_account(owner_id), amount)],
            memo="Earnings moved to balance",
            actor=f"user:{owner_id}",
        )


def request_payout(*, owner_id: int, amount: Decimal, destination: str) -> Payout:
    amount = money(amount)
    with transaction.atomic():
        earnings, available = _locked_earnings(owner_id)
        if amount <= 0 or amount > available:
            raise LedgerError(f"A payout must be more than $0 and at most your available earnings, {usd(available)}.")
        payout = Payout.objects.create(
            owner_id=owner_id, public_id=secrets.token_urlsafe(9), amount=amount, destination=destination
        )
        _post(
            TransactionKind.PAYOUT_REQUEST,
            [(earnings, -amount), (payout_account(owner_id), amount)],
            idempotency_key=f"payout-request:{payout.public_id}",
            memo=f"Payout {payout.public_id} requested",
            actor=f"user:{owner_id}",
        )
        return payout


def decide_payout(*, payout_id: int, paid: bool, actor: str) -> bool:
    """Mark a pending payout paid or rejected (a rejection returns the money to earnings). Idempotent."""
    status = PayoutStatus.PAID if paid else PayoutStatus.REJECTED
    with transaction.atomic():
        changed = Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            status=status, decided_at=timezone.now(), decided_by=actor[:120]
        )
        if not changed:
            return False
        payout = Payout.objects.get(pk=payout_id)
        target = platform_account(AccountKind.PAID_OUT) if paid else owner_account(payout.owner_id)
        _post(
            TransactionKind.PAYOUT_PAID if paid else TransactionKind.PAYOUT_REJECTED,
            [(payout_account(payout.owner_id), -payout.amount), (target, payout.amount)],
            idempotency_key=f"payout-{status}:{payout.public_id}",
            memo=f"Payout {payout.public_id} {status}",
            actor=actor,
        )
        return True
