"""Proof that the ledger is whole: balanced transactions, cached balances equal to their entries,
no negative user money, no hold left hanging."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import ZERO, Account, AccountKind, Entry, Hold, HoldStatus
from .pricing import quantize

# SQLite sums decimals as floats: anything under half a unit of the 8th place is zero.
HALF_UNIT = Decimal("0.000000005")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entry_sums():
    per_account = Entry.objects.filter(account=OuterRef("pk")).values("account").annotate(total=Sum("amount"))
    money = DecimalField(max_digits=20, decimal_places=8)
    return Coalesce(Subquery(per_account.values("total"), output_field=money), Value(ZERO), output_field=money)


def reconcile() -> Report:
    report = Report()
    sums = Entry.objects.values("transaction").annotate(total=Sum("amount"))
    unbalanced = sums.filter(Q(total__gte=HALF_UNIT) | Q(total__lte=-HALF_UNIT)).order_by("transaction")
    for row in unbalanced[:50]:
        report.problems.append(f"transaction #{row['transaction']} entries sum to {quantize(row['total'])}, not 0")

    accounts = Account.objects.annotate(entries_total=_entry_sums())
    for account in accounts.filter(balance__isnull=False).iterator():
        entries_total = quantize(account.entries_total)
        if account.balance != entries_total:
            difference = quantize(account.balance - entries_total)
            report.problems.append(
                f"account {account.code}: cached balance {account.balance} != entries {entries_total} "
                f"(difference {difference})"
            )
    user_money = [AccountKind.USER, AccountKind.HOLD, AccountKind.OWNER, AccountKind.PAYOUT]
    for account in accounts.filter(kind__in=user_money, entries_total__lte=-HALF_UNIT).iterator():
        report.problems.append(f"account {account.code} is negative: {quantize(account.entries_total)}")

    open_holds = Hold.objects.filter(status=HoldStatus.OPEN)
    held = dict(open_holds.values("user").annotate(total=Sum("amount")).values_list("user", "total"))
    for account in accounts.filter(kind=AccountKind.HOLD).iterator():
        expected = quantize(held.get(account.user_id) or ZERO)
        if quantize(account.entries_total) != expected:
            report.problems.append(
                f"account {account.code} holds {account.entries_total} but its open holds add up to {expected}"
            )
    cutoff = timezone.now() - timedelta(seconds=settings.TOKENHUB_HOLD_TIMEOUT_SECONDS)
    stale = open_holds.filter(created_at__lt=cutoff).count()
    if stale:
        report.problems.append(f"{stale} open hold(s) older than {settings.TOKENHUB_HOLD_TIMEOUT_SECONDS}s")

    totals = dict(
        Entry.objects.values("account__kind").annotate(total=Sum("amount")).values_list("account__kind", "total")
    )
    for kind, _label in AccountKind.choices:
        report.summary[kind] = str(quantize(totals.get(kind) or ZERO))
    report.summary["open_holds"] = str(open_holds.count())
    return report
