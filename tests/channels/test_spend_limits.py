"""Channel spend limits (channels_app/spend.py): integer counters of 10⁻⁸ USD per UTC day and month,
reserved atomically at a call's hold, corrected at its settlement, re-read from the records when lost."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection

from billing.models import UsageRecord, UsageStatus
from channels_app import routing, spend
from tests.channels.conftest import make_channel

LIMITS = spend.Limits(daily=Decimal("1.00"), monthly=Decimal("5.00"))


def test_amounts_are_whole_units_of_ten_to_the_minus_eight_dollars():
    assert spend.units(Decimal("0.00000001")) == 1 and spend.units(Decimal("1.5")) == 150_000_000
    assert spend.usd(150_000_000) == Decimal("1.50000000")


def test_the_reason_names_the_period_and_when_it_turns_but_not_the_owners_amount():
    assert spend.exceeded(LIMITS, spend.units(Decimal("0.99")), 0) is None
    at_limit = spend.exceeded(LIMITS, spend.units(Decimal("1")), 0)
    assert at_limit == "at its owner's daily spend limit until 00:00 UTC"
    # A call whose hold would pass the limit does not fit, though the channel is not at it yet.
    short = spend.exceeded(LIMITS, spend.units(Decimal("0.95")), 0, spend.units(Decimal("0.10")))
    assert short == "has less left of its owner's daily spend limit than this call may cost (until 00:00 UTC)"
    assert "monthly" in spend.exceeded(LIMITS, 0, spend.units(Decimal("5")))
    assert all("$" not in reason for reason in (at_limit, short))


@pytest.fixture
def limited(catalog, bob):
    channel = make_channel(bob, daily_spend_limit_usd=Decimal("1"), monthly_spend_limit_usd=Decimal("5"))
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])
    yield channel
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])


def test_routing_explains_a_channel_at_its_limit(limited):
    cache.set_many({key: spend.units(Decimal("1")) for key in spend.keys(limited.pk)}, timeout=600)
    routing.invalidate()
    with pytest.raises(routing.Refusal) as refusal:
        routing.plan("gpt-4o-mini", user_id=0)
    assert "#1 at its owner's daily spend limit until 00:00 UTC" in refusal.value.message
    assert "$" not in refusal.value.message and "daily $1" in refusal.value.detail  # the amount: staff only


def reserve(channel, amount: str):
    return asyncio.run(spend.reserve(channel.pk, channel.public_id, LIMITS, Decimal(amount)))


def test_a_settlement_replaces_the_reservation_and_a_failure_gives_it_back(limited):
    held = reserve(limited, "0.30")
    assert isinstance(held, spend.Reservation) and spend.current(limited.pk) == (Decimal("0.3"), Decimal("0.3"))
    spend.settle(held, Decimal("0.12345678"))
    failed = reserve(limited, "0.50")
    spend.settle(failed, Decimal(0))
    assert spend.current(limited.pk) == (Decimal("0.12345678"), Decimal("0.12345678"))


def test_a_settlement_after_midnight_corrects_the_day_it_was_reserved_in(limited):
    today = reserve(limited, "0.10")  # today's counters (and their epoch)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    old = spend.Reservation(spend.keys(limited.pk, yesterday), Decimal("0.40"), today.epoch, limited.pk)
    cache.set_many({key: spend.units(Decimal("0.40")) for key in old.keys}, timeout=600)
    spend.settle(old, Decimal("0.25"))
    assert int(cache.get(old.keys[0])) == spend.units(Decimal("0.25"))
    assert spend.current(limited.pk)[0] == Decimal("0.10")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_pass_the_limit(catalog, bob):
    channel = make_channel(bob, daily_spend_limit_usd=Decimal("1"))
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])

    def one(_):
        try:
            return reserve(channel, "0.07")
        finally:
            connection.close()

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, range(40)))
    reserved = [o for o in outcomes if isinstance(o, spend.Reservation)]
    assert len(reserved) == 14  # 14 × 0.07 = 0.98; a 15th would pass $1.00
    assert all("owner's daily spend limit" in o for o in outcomes if isinstance(o, str))
    assert spend.current(channel.pk)[0] == Decimal("0.98")


@pytest.mark.django_db(transaction=True)  # the re-read runs on a worker thread's own connection
def test_counters_redis_lost_are_re_read_from_the_usage_records(limited, alice):
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    earlier_this_month = month_start if now.day > 1 else now - timedelta(minutes=1)
    rows = [(now - timedelta(minutes=1), "0.40"), (earlier_this_month, "0.50"), (month_start - timedelta(days=1), "9")]
    UsageRecord.objects.bulk_create(
        UsageRecord(
            request_id=f"r{n}",
            user=alice,
            model="gpt-4o-mini",
            channel=limited.public_id,
            cost_usd=Decimal(cost),
            upstream_usd=Decimal(cost),
            status=UsageStatus.OK,
            created_at=at,
        )
        for n, (at, cost) in enumerate(rows)
    )
    assert isinstance(reserve(limited, "0.05"), spend.Reservation)
    today, month = spend.current(limited.pk)
    assert month == Decimal("0.95")  # this month's records and the new reservation; last month's not
    assert today == (Decimal("0.45") if now.day > 1 else Decimal("0.95"))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_call_reserved_before_redis_lost_the_counters_settles_in_full_on_the_re_read_ones(catalog, bob, alice):
    channel = make_channel(bob, daily_spend_limit_usd=Decimal("1"))
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])
    in_flight = reserve(channel, "0.30")
    assert isinstance(in_flight, spend.Reservation) and in_flight.epoch
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])  # Redis restarted, empty
    UsageRecord.objects.create(  # a call settled meanwhile, in the records
        request_id="earlier",
        user=alice,
        model="gpt-4o-mini",
        channel=channel.public_id,
        cost_usd=Decimal("0.10"),
        excess_usd=Decimal("0.02"),
        upstream_usd=Decimal("0.12"),
        status=UsageStatus.OK,
    )
    newer = reserve(channel, "0.20")  # re-reads the counters: 0.12, under a new epoch
    assert newer.epoch != in_flight.epoch and spend.current(channel.pk)[0] == Decimal("0.32")
    spend.settle(in_flight, Decimal("0.05"))  # its hold was never in the re-read counters: add what it cost
    spend.settle(newer, Decimal("0.04"))
    assert spend.current(channel.pk)[0] == Decimal("0.21")  # 0.12 + 0.05 + 0.04: nothing taken off twice
