"""Channel spend limits: daily and monthly USD of upstream usage at the catalog's prices, after which
the channel rests until the UTC day or month turns.

Exact under concurrency: a call reserves its hold (the most it can cost) against both periods'
counters before its upstream is called, in one atomic Redis script that refuses if either would pass
its limit; its settlement replaces the reservation with what it cost, a failure gives it back. The
counters hold integer units of 10⁻⁸ USD (no float anywhere). Routing reads them with the breaker
states (channels_app/health.py `look`: no extra round trip), so a channel at its limit is explained
in refusals; the reservation is what makes the limit exact.

A Redis that lost its counters (restarted without persistence) is noticed by a missing epoch (a
random token set when the counters are read from the usage records, one indexed query): they are
re-read before the next reservation, under a new epoch. A call reserved before the loss settles by
adding its whole spend, since the re-read counters never held its hold. While Redis is unreachable
the limits, like the others, are not enforced. The spend counted is the usage the upstream reported
at the catalog's prices, in full (the owner's upstream billed it, whatever the caller was charged).
"""

from __future__ import annotations

import threading
import uuid
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


def epoch_key(channel_id: int) -> str:
    return f"spend:{channel_id}:epoch"


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
    epoch: str = ""  # the counters' epoch it was made in ("" where Redis was out of reach)
    channel_id: int = 0


def exceeded(limits: Limits, day_units: int, month_units: int, extra: int = 0) -> str | None:
    """Why a channel with these counters cannot take `extra` units more (None: it can; with no
    `extra`, a channel with nothing left). Callers may read it: it names no amount (an owner's
    limits are theirs; the channel page and the admin show them)."""
    daily, monthly = limits.caps()
    for cap, used, period, turns in (
        (daily, day_units, "daily", "00:00 UTC"),
        (monthly, month_units, "monthly", "the 1st, 00:00 UTC"),
    ):
        if cap < 0:
            continue
        if used >= cap:
            return f"at its owner's {period} spend limit until {turns}"
        if used + extra > cap:
            return f"has less left of its owner's {period} spend limit than this call may cost (until {turns})"
    return None


async def reserve(channel_id: int, public_id: str, limits: Limits, amount: Decimal) -> Reservation | str:
    """Reserve `amount` in both periods: the reservation, or why the channel cannot take it."""
    period_keys = keys(channel_id)
    if not hasattr(cache, "reserve"):  # the embedded default: counters in this process's memory
        if not cache.has_key(epoch_key(channel_id)) or None in (cache.get(period_keys[0]), cache.get(period_keys[1])):
            await sync_to_async(_seed, thread_sensitive=False)(channel_id, public_id, period_keys)
        return _reserve_locally(period_keys, limits, amount)
    for _ in range(2):
        outcome, epoch = cache.reserve([*period_keys, epoch_key(channel_id)], units(amount), limits.caps())
        if outcome == 0:
            return Reservation(period_keys, amount, epoch, channel_id)
        if outcome > 0:
            return exceeded(limits, *_counts(period_keys), units(amount)) or "at its spend limit"
        await sync_to_async(_seed, thread_sensitive=False)(channel_id, public_id, period_keys)
    return "its spend counters could not be read"


def _counts(period_keys: tuple[str, str]) -> tuple[int, int]:
    found = cache.get_many(list(period_keys))
    return int(found.get(period_keys[0], 0)), int(found.get(period_keys[1], 0))


def _seed(channel_id: int, public_id: str, period_keys: tuple[str, str]) -> None:
    """Counters that are missing: a new day or month (0), or a Redis that lost them (re-read from the
    records, under a new epoch)."""
    try:
        _seed_counters(channel_id, public_id, period_keys)
    finally:
        connection.close()  # a worker thread's connection goes back to the pool


def _seed_counters(channel_id: int, public_id: str, period_keys: tuple[str, str]) -> None:
    day_key, month_key = period_keys
    seed = getattr(cache, "seed", cache.add)  # set if absent: concurrent seeders keep the first value
    if not cache.has_key(epoch_key(channel_id)):  # (the epoch is a raw string: no deserialising it)
        # The counters first: an epoch present tells a concurrent seeder that they are done.
        day_start, month_start = _periods()
        seed(day_key, units(spent_in_records(public_id, day_start)), DAY_SECONDS)
        seed(month_key, units(spent_in_records(public_id, month_start)), MONTH_SECONDS)
        seed(epoch_key(channel_id), uuid.uuid4().hex, 2 * MONTH_SECONDS)
    else:
        seed(day_key, 0, DAY_SECONDS)
        seed(month_key, 0, MONTH_SECONDS)


def spent_in_records(public_id: str, since: datetime) -> Decimal:
    from billing.models import UsageRecord  # a read of billing's records, only when counters are lost

    # What the upstream reported, at the catalog's prices, above the hold and on the owner's own calls
    # too: what the live counter counted.
    rows = UsageRecord.objects.filter(channel=public_id, created_at__gte=since)
    return rows.aggregate(spent=Sum("upstream_usd"))["spent"] or Decimal(0)


def _reserve_locally(period_keys: tuple[str, str], limits: Limits, amount: Decimal) -> Reservation | str:
    with _local_lock:
        day, month = _counts(period_keys)
        reason = exceeded(limits, day, month, units(amount))
        if reason:
            return reason
        values = dict(zip(period_keys, (day + units(amount), month + units(amount)), strict=True))
        cache.set_many(values, timeout=MONTH_SECONDS)
        return Reservation(period_keys, amount)


_told_periods: set[str] = set()  # this process told the owner already (Celery dedupes across processes)


def tell_owner(channel_id: int, reason: str) -> None:
    """The owner hears by e-mail once per period that their channel refuses calls for its limit.

    Called by the relay when a reservation is refused: the mail is queued from a thread, so the event
    loop never waits for the broker."""
    day_key, month_key = keys(channel_id)
    period = month_key if "monthly" in reason else day_key
    if period in _told_periods:
        return
    if len(_told_periods) > 10_000:
        _told_periods.clear()
    _told_periods.add(period)
    from .tasks import tell_spend_limit_reached

    threading.Thread(target=tell_spend_limit_reached.delay, args=(channel_id, reason, period), daemon=True).start()


def settle(reservation: Reservation, spent: Decimal) -> None:
    """Replace a reservation by what the call cost (0: it failed)."""
    change = units(spent) - units(reservation.amount)
    if hasattr(cache, "adjust_existing"):
        keys_and_epoch = [*reservation.keys, epoch_key(reservation.channel_id)]
        cache.adjust_existing(keys_and_epoch, change, units(spent), reservation.epoch)
        return
    if not change:
        return
    with _local_lock:
        day, month = _counts(reservation.keys)
        cache.set_many(dict(zip(reservation.keys, (day + change, month + change), strict=True)), MONTH_SECONDS)


def current(channel_id: int) -> tuple[Decimal, Decimal]:
    """(today, this month) spent and reserved, for the channel's page."""
    day, month = _counts(keys(channel_id))
    return usd(day), usd(month)
