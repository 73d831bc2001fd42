"""Channel spend limits: daily and monthly USD of upstream usage at the catalog's prices, after which
the channel rests until the UTC day or month turns.

Exact under concurrency: a call reserves its hold (the most it can cost) against both periods'
counters before its upstream is called, in one atomic Redis script that refuses if either would pass
its limit; its settlement replaces the reservation with what it cost, a failure gives it back. The
counters hold integer units of 10⁻⁸ USD (no float anywhere). Routing reads them with the breaker
states (channels_app/health.py `look`: no extra round trip), so a channel at its limit is explained
in refusals; the reservation is what makes the limit exact.

A Redis that lost its counters (restarted without persistence) is noticed by a missing month
counter: both are re-read from the usage records (one indexed query) before the next reservation.
While Redis is unreachable the limits, like the others, are not enforced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.db.models import Sum

from tokenhub.lib.money import EIGHT_PLACES

DAY_SECONDS, MONTH_SECONDS = 2 * 86400, 32 * 86400  # expiries: past the period's end, then gone
_local_lock = threading.Lock()  # the embedded default (local memory, one process)


def units(amount: Decimal) -> int:
    return int((Decimal(amount) / EIGHT_PLACES).to_integral_value())


def usd(count: int) -> Decimal:
    return (Decimal(count) * EIGHT_PLACES).quantize(EIGHT_PLACES)


def _periods(now: datetime | None = None) -> tuple[datetime, datetime]:
    """(the UTC day's start, the UTC month's start)."""
    day = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def keys(channel_id: int, now: datetime | None = None) -> tuple[str, str]:
    day, _month = _periods(now)
    return f"spend:{channel_id}:d:{day:%Y%m%d}", f"spend:{channel_id}:m:{day:%Y%m}"


@dataclass(frozen=True)
class Limits:
    daily: Decimal | None = None
    monthly: Decimal | None = None

    def __bool__(self) -> bool:
        return self.daily is not None or self.monthly is not None

    def caps(self) -> list[int]:
        return [units(limit) if limit is not None else -1 for limit in (self.daily, self.monthly)]


@dataclass(frozen=True)
class Reservation:
    keys: tuple[str, str]  # the periods it was made in: a settlement after midnight corrects those
    amount: Decimal


def exceeded(limits: Limits, day_units: int, month_units: int, extra: int = 0) -> str | None:
    """Why a channel with these counters cannot take `extra` units more (None: it can; with no
    `extra`, a channel with nothing left)."""
    daily, monthly = limits.caps()
    if daily >= 0 and (day_units >= daily or day_units + extra > daily):
        return f"at its daily spend limit of ${limits.daily:.2f} until 00:00 UTC"
    if monthly >= 0 and (month_units >= monthly or month_units + extra > monthly):
        return f"at its monthly spend limit of ${limits.monthly:.2f} until the 1st, 00:00 UTC"
    return None


async def reserve(channel_id: int, public_id: str, limits: Limits, amount: Decimal) -> Reservation | str:
    """Reserve `amount` in both periods: the reservation, or why the channel cannot take it."""
    period_keys = keys(channel_id)
    if not hasattr(cache, "reserve"):  # the embedded default: counters in this process's memory
        if cache.get(period_keys[1]) is None or cache.get(period_keys[0]) is None:
            await sync_to_async(_seed, thread_sensitive=False)(public_id, period_keys)
        return _reserve_locally(period_keys, limits, amount)
    for _ in range(2):
        outcome = cache.reserve(list(period_keys), units(amount), limits.caps())
        if outcome == 0:
            return Reservation(period_keys, amount)
        if outcome > 0:
            return exceeded(limits, *_counts(period_keys), units(amount)) or "at its spend limit"
        await sync_to_async(_seed, thread_sensitive=False)(public_id, period_keys)
    return "its spend counters could not be read"


def _counts(period_keys: tuple[str, str]) -> tuple[int, int]:
    found = cache.get_many(list(period_keys))
    return int(found.get(period_keys[0], 0)), int(found.get(period_keys[1], 0))


def _seed(public_id: str, period_keys: tuple[str, str]) -> None:
    """Counters that are missing: a new day (0), or a Redis that lost them (re-read from the records)."""
    try:
        _seed_counters(public_id, period_keys)
    finally:
        connection.close()  # a worker thread's connection goes back to the pool


def _seed_counters(public_id: str, period_keys: tuple[str, str]) -> None:
    day_key, month_key = period_keys
    seed = getattr(cache, "seed", cache.add)  # set if absent: concurrent seeders keep the first value
    if cache.get(month_key) is None:
        # The day first: a month counter present tells a concurrent seeder that the day is done too.
        day_start, month_start = _periods()
        seed(day_key, units(spent_in_records(public_id, day_start)), DAY_SECONDS)
        seed(month_key, units(spent_in_records(public_id, month_start)), MONTH_SECONDS)
    else:
        seed(day_key, 0, DAY_SECONDS)


def spent_in_records(public_id: str, since: datetime) -> Decimal:
    from billing.models import UsageRecord  # a read of billing's records, only when counters are lost

    rows = UsageRecord.objects.filter(channel=public_id, created_at__gte=since)
    return rows.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def _reserve_locally(period_keys: tuple[str, str], limits: Limits, amount: Decimal) -> Reservation | str:
    with _local_lock:
        day, month = _counts(period_keys)
        reason = exceeded(limits, day, month, units(amount))
        if reason:
            return reason
        values = dict(zip(period_keys, (day + units(amount), month + units(amount)), strict=True))
        cache.set_many(values, timeout=MONTH_SECONDS)
        return Reservation(period_keys, amount)


def settle(reservation: Reservation, spent: Decimal) -> None:
    """Replace a reservation by what the call cost (0: it failed)."""
    change = units(spent) - units(reservation.amount)
    if not change:
        return
    if hasattr(cache, "adjust_existing"):
        cache.adjust_existing(list(reservation.keys), change)
        return
    with _local_lock:
        day, month = _counts(reservation.keys)
        cache.set_many(dict(zip(reservation.keys, (day + change, month + change), strict=True)), MONTH_SECONDS)


def current(channel_id: int) -> tuple[Decimal, Decimal]:
    """(today, this month) spent and reserved, for the channel's page."""
    day, month = _counts(keys(channel_id))
    return usd(day), usd(month)
