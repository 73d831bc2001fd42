"""Retention: usage records older than TOKENHUB_USAGE_RETENTION_DAYS become daily totals.

One UTC day at a time, in one database transaction: the day's records (those past the cut-off) are
summed per user, key, model, channel, owner and status into `UsageDaily` rows (added to any the day
already has) and deleted. A record is therefore counted exactly once, whatever fails or runs twice:
the sums and the deletion commit together, and a second run finds nothing left to roll. The ledger is
untouched (its transactions are kept for ever); `reconcile` matches the rolled-up settlements against
these totals, and the readers of usage (earnings, keys' spend, `export_usage`) add them in.

The retention is at least MIN_RETENTION_DAYS: the dashboard's and earnings' 30-day charts and a
channel's month of spend (re-read when Redis lost its counters) read only days that are kept whole.
Prompts and answers are never stored at all; these are counts and amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from .models import ZERO, UsageDaily, UsageRecord

MIN_RETENTION_DAYS = 35
LOCK_CLASS = 7301  # pg_advisory_xact_lock's first key: the usage roll-up's own class of locks
GROUP = ("user_id", "api_key_id", "model", "channel", "owner_id", "status")
SUMMED = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "owner_cut_usd",
    "platform_usd",
    "excess_usd",
    "upstream_usd",
)


COUNTS = {"calls", "settled_calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}
COUNTS |= {"reasoning_tokens"}


@dataclass(frozen=True)
class RolledDay:
    day: date
    records: int
    rows: int


def cutoff(now: datetime | None = None) -> datetime:
    """Records created before this are rolled up: the start of the UTC day `retention` days ago."""
    days = max(settings.TOKENHUB_USAGE_RETENTION_DAYS, MIN_RETENTION_DAYS)
    today = (now or timezone.now()).astimezone(UTC).date()
    return _start(today - timedelta(days=days))


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def days_to_roll(before: datetime) -> list[date]:
    old = UsageRecord.objects.filter(created_at__lt=before)
    first = old.order_by("created_at").values_list("created_at", flat=True).first()
    if first is None:
        return []
    day, last = first.astimezone(UTC).date(), before.date()
    return [day + timedelta(days=n) for n in range((last - day).days)]


def roll_up(now: datetime | None = None) -> list[RolledDay]:
    """Roll every day before the cut-off; returns what was rolled (nothing, run again)."""
    before = cutoff(now)
    return [rolled for day in days_to_roll(before) if (rolled := roll_up_day(day, before)).records]


def roll_up_day(day: date, before: datetime) -> RolledDay:
    start, end = _start(day), min(_start(day + timedelta(days=1)), before)
    with transaction.atomic():
        _lock_day(day)  # a second run waits here, then finds no records left
        existing = {_key(row): row for row in UsageDaily.objects.filter(day=day)}
        chosen = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        groups = chosen.values(*GROUP).annotate(
            n=Count("id"),
            settled=Count("transaction_id"),
            estimated_n=Count("id", filter=Q(estimated=True)),
            latency=Sum("latency_ms"),
            newest_transaction=Max("transaction_id"),
            **{f"sum_{field}": Sum(field) for field in SUMMED},
        )
        new, changed = [], []
        for group in groups:
            row = existing.get(tuple(group[field] for field in GROUP))
            if row is None:
                row = UsageDaily(day=day, **{field: group[field] for field in GROUP})
                new.append(row)
            else:
                changed.append(row)
            row.calls += group["n"]
            row.settled_calls += group["settled"]
            row.estimated_calls += group["estimated_n"]
            row.latency_ms_total += group["latency"] or 0
            for field in SUMMED:
                setattr(row, field, getattr(row, field) + (group[f"sum_{field}"] or 0))
            if group["newest_transaction"] is not None:
                row.max_transaction_id = max(row.max_transaction_id or 0, group["newest_transaction"])
        if not new and not changed:
            return RolledDay(day, 0, 0)
        UsageDaily.objects.bulk_create(new)
        fields = ["calls", "settled_calls", "estimated_calls", "latency_ms_total", "max_transaction_id", *SUMMED]
        UsageDaily.objects.bulk_update(changed, fields)
        deleted, _ = chosen.delete()
        counted = sum(group["n"] for group in groups)
        if deleted != counted:  # nothing writes records into a day this old; if something did, roll nothing
            raise RuntimeError(f"usage of {day}: {counted} record(s) summed but {deleted} deleted")
    return RolledDay(day, deleted, len(new) + len(changed))


def _lock_day(day: date) -> None:
    """One roller per day at a time (PostgreSQL: a transaction-scoped advisory lock; SQLite serialises
    writing transactions anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, day.toordinal()])


def _key(row: UsageDaily) -> tuple:
    return tuple(getattr(row, field) for field in GROUP)


def rolled_totals(**filters) -> dict:
    """Sums over the roll-ups (filters on UsageDaily), zeros where there are none."""
    sums = UsageDaily.objects.filter(**filters).aggregate(
        calls=Sum("calls"), settled_calls=Sum("settled_calls"), **{field: Sum(field) for field in SUMMED}
    )
    return {name: value or (0 if name in COUNTS else ZERO) for name, value in sums.items()}
