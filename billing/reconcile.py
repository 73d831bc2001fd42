"""Proof that the ledger is whole: balanced transactions, cached balances equal to their entries,
no negative user money, no hold left hanging, and the ledger agreeing with the records of the calls
it billed (usage records, holds, API keys' spend).

Every check is one aggregate query; only the rows in disagreement come back to Python (50 at most
of each kind). It runs hourly from Celery and as `manage.py reconcile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, DecimalField, F, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Abs, Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from accounts.models import ApiKey

from . import retention
from .models import (
    CACHED_KINDS,
    ZERO,
    Account,
    AccountKind,
    Entry,
    Hold,
    HoldStatus,
    Transaction,
    TransactionKind,
    UsageDaily,
    UsageRecord,
)
from .pricing import quantize

# SQLite sums decimals as floats: anything under half a unit of the 8th place is zero.
HALF_UNIT = Decimal("0.000000005")
SHOWN = 50  # problems of one kind listed; the rest are counted
MONEY = DecimalField(max_digits=20, decimal_places=8)

# The accounts each kind of transaction may touch: a leg anywhere else moved money no operation moves
# (earnings into revenue inside a payout, say), however balanced it is.
LEGS = {
    TransactionKind.HOLD: {AccountKind.USER, AccountKind.HOLD},
    TransactionKind.SETTLE: {AccountKind.USER, AccountKind.HOLD, AccountKind.OWNER, AccountKind.REVENUE},
    TransactionKind.RELEASE: {AccountKind.USER, AccountKind.HOLD},
    TransactionKind.GRANT: {AccountKind.PROMOTIONS, AccountKind.USER},
    TransactionKind.CHECKIN: {AccountKind.PROMOTIONS, AccountKind.USER},
    TransactionKind.REDEEM: {AccountKind.CODES, AccountKind.USER},
    TransactionKind.ADJUST: {AccountKind.ADJUSTMENTS, AccountKind.USER},
    TransactionKind.EARNINGS_TO_BALANCE: {AccountKind.OWNER, AccountKind.USER},
    TransactionKind.PAYOUT_REQUEST: {AccountKind.OWNER, AccountKind.PAYOUT},
    TransactionKind.PAYOUT_PAID: {AccountKind.PAYOUT, AccountKind.PAID_OUT},
    TransactionKind.PAYOUT_REJECTED: {AccountKind.PAYOUT, AccountKind.OWNER},
    TransactionKind.TOPUP: {AccountKind.PAYMENTS, AccountKind.USER},
    TransactionKind.TOPUP_REVERSAL: {AccountKind.USER, AccountKind.PAYMENTS},
}
SETTLEMENT_KINDS = [TransactionKind.SETTLE, TransactionKind.RELEASE]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entry_sums():
    per_account = Entry.objects.filter(account=OuterRef("pk")).values("account").annotate(total=Sum("amount"))
    return Coalesce(Subquery(per_account.values("total"), output_field=MONEY), Value(ZERO), output_field=MONEY)


def _differs(a, b) -> GreaterThanOrEqual:
    """a != b at 8 places (SQLite's sums are floats)."""
    return GreaterThanOrEqual(Abs(a - b, output_field=MONEY), Value(HALF_UNIT, output_field=MONEY))


def _usd(amount) -> str:
    return f"{quantize(amount):f}"  # 0.00000000, not 0E-8


def _list(report: Report, queryset, describe) -> None:
    rows = list(queryset[: SHOWN + 1])
    report.problems.extend(describe(row) for row in rows[:SHOWN])
    if len(rows) > SHOWN:
        report.problems.append(f"… and more like the last ({queryset.count()} in all)")


def reconcile() -> Report:
    report = Report()
    sums = Entry.objects.values("transaction").annotate(total=Sum("amount"))
    unbalanced = sums.filter(Q(total__gte=HALF_UNIT) | Q(total__lte=-HALF_UNIT)).order_by("transaction")
    for row in unbalanced[:50]:
        report.problems.append(f"transaction #{row['transaction']} entries sum to {_usd(row['total'])}, not 0")

    accounts = Account.objects.annotate(entries_total=_entry_sums())
    for account in accounts.filter(balance__isnull=False).iterator():
        entries_total = quantize(account.entries_total)
        if account.balance != entries_total:
            difference = quantize(account.balance - entries_total)
            report.problems.append(
                f"account {account.code}: cached balance {_usd(account.balance)} != entries {_usd(entries_total)} "
                f"(difference {_usd(difference)})"
            )
    user_money = [AccountKind.USER, AccountKind.HOLD, AccountKind.OWNER, AccountKind.PAYOUT]
    for account in accounts.filter(kind__in=user_money, entries_total__lte=-HALF_UNIT).iterator():
        report.problems.append(f"account {account.code} is negative: {_usd(account.entries_total)}")

    open_holds = Hold.objects.filter(status=HoldStatus.OPEN)
    held = dict(open_holds.values("user").annotate(total=Sum("amount")).values_list("user", "total"))
    for account in accounts.filter(kind=AccountKind.HOLD).iterator():
        expected = quantize(held.get(account.user_id) or ZERO)
        if quantize(account.entries_total) != expected:
            report.problems.append(
                f"account {account.code} holds {_usd(account.entries_total)} but its open holds add up to "
                f"{_usd(expected)}"
            )
    _check_cached_balances_present(report)
    _check_legs_fit_their_transactions(report)
    _check_settlements_match_their_calls(report)
    _check_key_spend(report)
    _check_key_reservations(report)
    _check_topups(report)

    cutoff = timezone.now() - timedelta(seconds=settings.TOKENHUB_HOLD_TIMEOUT_SECONDS)
    stale = open_holds.filter(created_at__lt=cutoff).count()
    if stale:
        report.problems.append(f"{stale} open hold(s) older than {settings.TOKENHUB_HOLD_TIMEOUT_SECONDS}s")

    totals = dict(
        Entry.objects.values("account__kind").annotate(total=Sum("amount")).values_list("account__kind", "total")
    )
    for kind, _label in AccountKind.choices:
        report.summary[kind] = _usd(totals.get(kind) or ZERO)
    report.summary["open_holds"] = str(open_holds.count())
    return report


def _check_cached_balances_present(report: Report) -> None:
    # The comparison above skips NULL balances (derived accounts have none by design); a user's or
    # a hold account's must be there, or the no-overdraft rule has nothing to test against.
    missing = Account.objects.filter(kind__in=CACHED_KINDS, balance__isnull=True).order_by("pk")
    _list(report, missing.values_list("code", flat=True), lambda code: f"account {code} has no cached balance")


def _check_legs_fit_their_transactions(report: Report) -> None:
    """Each transaction touches only the kinds of account its kind may, and (settlements apart,
    which pay an owner) the accounts of one user at most."""
    fits = Q()
    for kind, account_kinds in LEGS.items():
        fits |= Q(transaction__kind=kind, account__kind__in=account_kinds)
    stray = (
        Entry.objects.exclude(fits)
        .order_by("transaction", "pk")
        .values_list("transaction", "transaction__kind", "account__code")
    )
    _list(report, stray, lambda row: f"transaction #{row[0]} ({row[1]}) has a leg on {row[2]}")
    mixed = (
        Entry.objects.filter(account__user__isnull=False)
        .exclude(transaction__kind__in=SETTLEMENT_KINDS)
        .values("transaction")
        .annotate(users=Count("account__user", distinct=True))
        .filter(users__gt=1)
        .order_by("transaction")
    )
    _list(report, mixed, lambda row: f"transaction #{row['transaction']} moves money between {row['users']} users")
    orphans = Transaction.objects.filter(kind__in=SETTLEMENT_KINDS, usagerecord__isnull=True).order_by("pk")
    rolled_up = UsageDaily.objects.aggregate(newest=Max("max_transaction_id"))["newest"] or 0
    unexplained = orphans.filter(pk__gt=rolled_up)  # newer than every rolled-up call: lost, not rolled up
    _list(report, unexplained.values_list("pk", flat=True), lambda pk: f"settlement transaction #{pk} bills no call")
    _check_rolled_up_settlements(report, orphans.filter(pk__lte=rolled_up))


def _check_rolled_up_settlements(report: Report, rolled: QuerySet) -> None:
    """Calls whose records became daily totals (billing/retention.py): their settlements, together, moved
    what the totals say — as many settlements as settled calls, the owners' cuts to owners, the platform's
    share to revenue, and the cost out of the callers' holds and balances."""
    totals = retention.rolled_totals()
    count = rolled.count()
    if count != totals["settled_calls"]:
        report.problems.append(
            f"{count} settlement transaction(s) have no usage record, but the usage roll-ups count "
            f"{totals['settled_calls']} settled call(s)"
        )
    legs = Entry.objects.filter(transaction__in=rolled)
    platform = legs.filter(account__kind=AccountKind.REVENUE).aggregate(total=Sum("amount"))["total"] or ZERO
    _compare(report, "the platform's share", {None: platform}, {None: totals["platform_usd"]})
    # Per person, not only in sum: a day's row given to another owner or caller is caught too.
    owners = legs.filter(account__kind=AccountKind.OWNER).values("account__user").annotate(total=Sum("amount"))
    owed = UsageDaily.objects.exclude(owner=None).values("owner").annotate(total=Sum("owner_cut_usd"))
    _compare(
        report,
        "owners' cuts",
        {row["account__user"]: row["total"] for row in owners},
        {row["owner"]: row["total"] for row in owed},
    )
    callers = (
        legs.filter(account__kind__in=CACHED_KINDS).values("account__user").annotate(total=Sum("amount"))
    )  # the holds out and the refunds back: minus what the calls cost
    charged = UsageDaily.objects.values("user").annotate(total=Sum("cost_usd"))
    _compare(
        report,
        "the callers' cost",
        {row["account__user"]: -row["total"] for row in callers},
        {row["user"]: row["total"] for row in charged},
    )


def _compare(report: Report, what: str, in_ledger: dict, in_totals: dict) -> None:
    for who in sorted(set(in_ledger) | set(in_totals), key=lambda key: (key is not None, key or 0)):
        moved, said = quantize(in_ledger.get(who) or ZERO), quantize(in_totals.get(who) or ZERO)
        if abs(moved - said) >= HALF_UNIT:
            whose = f" for user #{who}" if who is not None else ""
            report.problems.append(
                f"rolled-up usage: the ledger moved {_usd(moved)} as {what}{whose}, the daily totals say {_usd(said)}"
            )


def _leg(**account):
    """The sum of a usage record's settlement legs on the accounts matching `account`."""
    where = Q(**{f"transaction__entries__account__{field}": value for field, value in account.items()})
    return Coalesce(Sum("transaction__entries__amount", filter=where), Value(ZERO), output_field=MONEY)


def _check_settlements_match_their_calls(report: Report) -> None:
    """Each call's settlement moved what its usage record says: the hold out, the cost's owner cut to
    the owner who served it and the rest to revenue, the remainder back to the user, and nothing else.

    Balanced tampering — earnings moved to revenue inside a settlement, a record's cost edited — passes
    the zero-sum and cached-balance checks; it cannot pass this.
    """
    held = Subquery(Hold.objects.filter(request_id=OuterRef("request_id")).values("amount")[:1], output_field=MONEY)
    expected_leg = (
        Q(transaction__entries__account__kind=AccountKind.OWNER, transaction__entries__account__user=F("owner"))
        | Q(transaction__entries__account__kind=AccountKind.REVENUE)
        | Q(transaction__entries__account__kind__in=CACHED_KINDS, transaction__entries__account__user=F("user"))
    )
    records = (
        UsageRecord.objects.filter(transaction__isnull=False)
        .annotate(
            held=Coalesce(held, Value(ZERO), output_field=MONEY),
            owner_leg=_leg(kind=AccountKind.OWNER, user=F("owner")),
            platform_leg=_leg(kind=AccountKind.REVENUE),
            hold_leg=_leg(kind=AccountKind.HOLD, user=F("user")),
            user_leg=_leg(kind=AccountKind.USER, user=F("user")),
            stray_legs=Count("transaction__entries", filter=~expected_leg),
        )
        .filter(
            _differs(F("owner_leg"), F("owner_cut_usd"))
            | _differs(F("platform_leg"), F("platform_usd"))
            | _differs(F("owner_cut_usd") + F("platform_usd"), F("cost_usd"))
            | _differs(F("hold_leg"), -F("held"))
            | _differs(F("user_leg"), F("held") - F("cost_usd"))
            | Q(stray_legs__gt=0)
        )
        .order_by("pk")
    )

    def describe(r) -> str:
        legs = (("owner", r.owner_leg), ("platform", r.platform_leg), ("hold", r.hold_leg), ("user", r.user_leg))
        ledger = ", ".join(f"{name} {_usd(amount)}" for name, amount in legs)
        return (
            f"call {r.request_id} (transaction #{r.transaction_id}): the record says cost {_usd(r.cost_usd)} = owner "
            f"{_usd(r.owner_cut_usd)} + platform {_usd(r.platform_usd)} from a hold of {_usd(r.held)}; the ledger "
            f"moved {ledger}" + (f" and {r.stray_legs} other leg(s)" if r.stray_legs else "")
        )

    _list(report, records, describe)


def _check_key_spend(report: Report) -> None:
    # A key's spend is what its calls were charged: the spend cap is enforced against this number.
    charged = (
        UsageRecord.objects.filter(api_key=OuterRef("pk")).values("api_key").annotate(total=Sum("cost_usd"))
    ).values("total")
    rolled_up = (  # the calls past retention, in the daily totals
        UsageDaily.objects.filter(api_key=OuterRef("pk")).values("api_key").annotate(total=Sum("cost_usd"))
    ).values("total")
    keys = (
        ApiKey.objects.annotate(
            charged=Coalesce(Subquery(charged, output_field=MONEY), Value(ZERO), output_field=MONEY)
            + Coalesce(Subquery(rolled_up, output_field=MONEY), Value(ZERO), output_field=MONEY)
        )
        .filter(_differs(F("spent_usd"), F("charged")))
        .order_by("pk")
    )
    _list(
        report,
        keys.values_list("public_id", "spent_usd", "charged"),
        lambda row: f"API key {row[0]} has spent {_usd(row[1])} but its calls were charged {_usd(row[2])}",
    )


def _check_key_reservations(report: Report) -> None:
    # A key's calls in flight count against its spend cap: the reservation must be its open holds.
    held = (
        Hold.objects.filter(api_key=OuterRef("pk"), status=HoldStatus.OPEN)
        .values("api_key")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    keys = (
        ApiKey.objects.annotate(held=Coalesce(Subquery(held, output_field=MONEY), Value(ZERO), output_field=MONEY))
        .filter(_differs(F("reserved_usd"), F("held")))
        .order_by("pk")
    )
    _list(
        report,
        keys.values_list("public_id", "reserved_usd", "held"),
        lambda row: (
            f"API key {row[0]} reserves {_usd(row[1])} for calls in flight but its open holds add up to {_usd(row[2])}"
        ),
    )


CREDITED_STATUSES = ("paid", "refunded", "disputed")


def _check_topups(report: Report) -> None:
    """Every paid order has exactly one credit, of its amount, to its buyer; no credit lacks a paid order;
    what refunds took back adds up on each order."""
    from .ledger.topups import credit_key
    from .models import PaymentOrder

    credits = {
        txn.idempotency_key: txn
        for txn in Transaction.objects.filter(kind=TransactionKind.TOPUP).prefetch_related("entries__account")
    }
    orders = {order.code: order for order in PaymentOrder.objects.all()}
    for code, order in orders.items():
        txn = credits.get(credit_key(code))
        if order.status in CREDITED_STATUSES:
            if txn is None or order.credit_id != txn.pk:
                report.problems.append(
                    f"order {code} is {order.status} but has no credit transaction {credit_key(code)}"
                )
                continue
            credited = sum((e.amount for e in txn.entries.all() if e.account.code == f"user:{order.user_id}"), ZERO)
            if credited != order.credit_usd:
                report.problems.append(
                    f"order {code} credited {_usd(credited)} where it sells {_usd(order.credit_usd)}"
                )
        elif txn is not None:
            report.problems.append(f"order {code} is {order.status} but was credited (transaction #{txn.pk})")
    for key, txn in credits.items():
        code = (key or "").removeprefix("topup:")
        if not key or not key.startswith("topup:") or code not in orders:
            report.problems.append(f"top-up transaction #{txn.pk} has no order ({key or 'no key'})")
    taken: dict[str, Decimal] = {}
    reversals = Entry.objects.filter(transaction__kind=TransactionKind.TOPUP_REVERSAL, amount__gt=0)
    for key, amount in reversals.values_list("transaction__idempotency_key", "amount"):
        parts = (key or "").split(":")
        if len(parts) == 3 and parts[0] in ("topup-reversal", "topup-collect"):
            taken[parts[1]] = taken.get(parts[1], ZERO) + amount
        else:
            report.problems.append(f"a top-up reversal has an unknown key {key!r}")
    for code, order in orders.items():
        accounted = taken.get(code, ZERO) + order.unrecovered_usd + order.waived_usd
        if accounted != order.debited_usd:
            report.problems.append(
                f"order {code} took back {_usd(order.debited_usd)} but the ledger, the shortfall and the waived part "
                f"add up to {_usd(accounted)}"
            )
