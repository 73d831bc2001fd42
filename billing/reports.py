"""Read-only views of a user's money for pages and the JSON API: summaries, usage, statement, earnings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from . import retention
from .ledger import balance_of, earnings_of
from .models import ZERO, Entry, Transaction, UsageDaily, UsageRecord
from .pricing import quantize


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def spend_between(user_id: int, start: datetime, end: datetime | None = None) -> Decimal:
    rows = UsageRecord.objects.filter(user_id=user_id, created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return quantize(rows.aggregate(total=Sum("cost_usd"))["total"] or ZERO)


@dataclass
class DailySeries:
    days: list[date]
    series: dict[str, list[Decimal]]  # label -> one value per day


def daily_series(rows, value_field: str, label_field: str, days: int = 30) -> DailySeries:
    """Per day and label sums over the last `days` days (UTC), for the spend and earnings charts."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    axis = [first + timedelta(days=i) for i in range(days)]
    grouped = (
        rows.filter(created_at__gte=_day_start(first))
        .annotate(day=TruncDate("created_at"))
        .values("day", label_field)
        .annotate(total=Sum(value_field))
    )
    series: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * days)
    for row in grouped:
        series[row[label_field] or "—"][(row["day"] - first).days] = quantize(row["total"] or ZERO)
    return DailySeries(axis, dict(series))


def dashboard(user_id: int) -> dict:
    today = timezone.now().date()
    usage = UsageRecord.objects.filter(user_id=user_id)
    return {
        "balance": balance_of(user_id),
        "spend_today": spend_between(user_id, _day_start(today)),
        "spend_month": spend_between(user_id, _day_start(today.replace(day=1))),
        "chart": daily_series(usage, "cost_usd", "model"),
        "recent": list(usage.select_related("api_key")[:10]),
    }


@dataclass
class UsageFilters:
    key: str = ""  # an API key's public id
    model: str = ""
    status: str = ""
    start: date | None = None
    end: date | None = None


def usage_rows(user_id: int, filters: UsageFilters):
    rows = UsageRecord.objects.filter(user_id=user_id).select_related("api_key")
    if filters.key:
        rows = rows.filter(api_key__public_id=filters.key)
    if filters.model:
        rows = rows.filter(model=filters.model)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.start:
        rows = rows.filter(created_at__gte=_day_start(filters.start))
    if filters.end and filters.end < date.max:  # the last day has no "next day"; nothing is later
        rows = rows.filter(created_at__lt=_day_start(filters.end + timedelta(days=1)))
    return rows.order_by("-created_at", "-id")


# Entry kinds shown on a statement, by the account they touch.
STATEMENT_ACCOUNTS = ("user", "owner", "payout")


def statement(user_id: int):
    """Every ledger movement of the user's spendable balance, earnings and pending payouts."""
    codes = [f"{kind}:{user_id}" for kind in STATEMENT_ACCOUNTS]
    return (
        Entry.objects.filter(account__code__in=codes)
        .select_related("transaction", "account")
        .order_by("-transaction__created_at", "-transaction_id", "account__code")
    )


def describe(entry: Entry) -> str:
    txn: Transaction = entry.transaction
    labels = {
        "hold": _("Call started (estimate held)"),
        "settle": _("Call settled"),
        "release": _("Call refunded"),
        "grant": _("Credit granted"),
        "checkin": _("Daily check-in"),
        "redeem": _("Redemption code"),
        "adjust": _("Adjustment"),
        "earnings_to_balance": _("Earnings moved to balance"),
        "payout_request": _("Payout requested"),
        "payout_paid": _("Payout paid"),
        "payout_rejected": _("Payout rejected"),
        "topup": _("Top-up"),
        "topup_reversal": _("Top-up refunded or charged back"),
    }
    label = labels.get(txn.kind, txn.kind)
    if entry.account.kind == "owner" and txn.kind == "settle":
        label = _("Earned from a call on your channel")
    return f"{label}: {txn.memo}" if txn.memo and txn.kind not in ("hold", "settle", "release") else label


def earnings(owner_id: int) -> dict:
    served = UsageRecord.objects.filter(owner_id=owner_id)
    per_channel = list(
        served.values("channel")
        .annotate(calls=Count("id"), earned=Sum("owner_cut_usd"), revenue=Sum("cost_usd"))
        .order_by("channel")
    )
    totals = served.aggregate(calls=Count("id"), earned=Sum("owner_cut_usd"), revenue=Sum("cost_usd"))
    # Calls past the retention period are daily totals now (billing/retention.py): added in.
    rolled_up = UsageDaily.objects.filter(owner_id=owner_id)
    for row in rolled_up.values("channel").annotate(
        calls=Sum("calls"), earned=Sum("owner_cut_usd"), revenue=Sum("cost_usd")
    ):
        _add_row(per_channel, row)
    old = retention.rolled_totals(owner_id=owner_id)
    totals = {
        "calls": (totals["calls"] or 0) + old["calls"],
        "earned": (totals["earned"] or ZERO) + old["owner_cut_usd"],
        "revenue": (totals["revenue"] or ZERO) + old["cost_usd"],
    }
    revenue = totals["revenue"] or ZERO
    earned = quantize(totals["earned"] or ZERO)
    return {
        "available": earnings_of(owner_id),
        "earned_total": earned,
        "calls": totals["calls"],
        "share": (earned / revenue * 100).quantize(Decimal("0.1")) if revenue else None,
        "per_channel": per_channel,
        "chart": daily_series(served, "owner_cut_usd", "channel"),
    }


def _add_row(rows: list[dict], extra: dict) -> None:
    for row in rows:
        if row["channel"] == extra["channel"]:
            for name in ("calls", "earned", "revenue"):
                row[name] = (row[name] or 0) + (extra[name] or 0)
            return
    rows.append(extra)
    rows.sort(key=lambda row: row["channel"])


def distinct_models(user_id: int) -> list[str]:
    return list(
        UsageRecord.objects.filter(user_id=user_id).values_list("model", flat=True).distinct().order_by("model")
    )


@dataclass(frozen=True)
class ModelHealth:
    calls: int
    success_rate: Decimal | None  # completed calls / calls, as a percentage
    median_latency_ms: int | None  # of the completed calls


HEALTH_CACHE_SECONDS = 300


def model_health(hours: int = 24) -> dict[str, ModelHealth]:
    """Per model over the last `hours` of usage records: calls, the share completed, the median latency
    of those; cached for a few minutes (the models page is public and may be asked often)."""
    from django.core.cache import cache

    key = f"reports:model-health:{hours}"
    found = cache.get(key)
    if found is None:
        found = _model_health(timezone.now() - timedelta(hours=hours))
        cache.set(key, found, HEALTH_CACHE_SECONDS)
    return found


def _model_health(since: datetime) -> dict[str, ModelHealth]:
    from django.db import connection
    from django.db.models import Q

    from .models import UsageStatus

    rows = UsageRecord.objects.filter(created_at__gte=since)
    counts = rows.values("model").annotate(calls=Count("id"), ok=Count("id", filter=Q(status=UsageStatus.OK)))
    medians: dict[str, int] = {}
    if connection.vendor == "postgresql":
        sql = (
            "SELECT model, percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FROM billing_usagerecord "
            "WHERE created_at >= %s AND status = %s GROUP BY model"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [since, UsageStatus.OK])
            medians = {model: int(value) for model, value in cursor.fetchall() if value is not None}
    else:  # the embedded default: small tables, the median in Python
        latencies = defaultdict(list)
        for model, latency in rows.filter(status=UsageStatus.OK).values_list("model", "latency_ms"):
            latencies[model].append(latency)
        medians = {model: sorted(values)[len(values) // 2] for model, values in latencies.items()}
    return {
        row["model"]: ModelHealth(
            calls=row["calls"],
            success_rate=(Decimal(row["ok"]) * 100 / row["calls"]).quantize(Decimal("0.1")) if row["calls"] else None,
            median_latency_ms=medians.get(row["model"]),
        )
        for row in counts
    }
