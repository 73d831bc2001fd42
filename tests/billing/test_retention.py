"""Retention (billing/retention.py): usage records past TOKENHUB_USAGE_RETENTION_DAYS become daily totals,
through the Celery task, counted exactly once however often (or however concurrently) it runs; earnings,
keys' spend, reconcile and export_usage read the totals for the rolled-up days."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from accounts import keys
from billing import ledger, reports, retention
from billing.models import UsageDaily, UsageRecord
from billing.pricing import Usage
from billing.reconcile import reconcile
from billing.tasks import roll_up_usage
from tests.billing.conftest import fund
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(UTC)


def call(user, key, owner, request_id: str, cost: str, days_ago: int, model: str = "gpt-4o-mini") -> None:
    """A settled call, as the relay books it, whose record is dated `days_ago` days back."""
    ledger.hold(user_id=user.pk, amount=Decimal("1"), request_id=request_id, api_key_id=key.pk, model=model)
    ledger.settle(
        request_id=request_id,
        usage=Usage(input_tokens=100, output_tokens=50),
        cost=Decimal(cost),
        owner_id=owner.pk,
        owner_cut=Decimal("0.25"),
        model=model,
        channel="ch_old",
        latency_ms=40,
    )
    UsageRecord.objects.filter(request_id=request_id).update(created_at=NOW - timedelta(days=days_ago))


@pytest.fixture
def history(alice, bob, settings):
    settings.TOKENHUB_USAGE_RETENTION_DAYS = 40
    fund(alice, "10")
    key, _raw = keys.create_key(alice, "old key")
    for n, (cost, days_ago) in enumerate([("0.10", 50), ("0.20", 50), ("0.30", 45), ("0.40", 3)]):
        call(alice, key, bob, f"r{n}", cost, days_ago)
    return key


def test_old_records_become_daily_totals_once_however_often_the_task_runs(history, bob, celery_worker):
    earned_before = reports.earnings(bob.pk)
    roll_up_usage.delay()
    wait_for(lambda: UsageDaily.objects.count() == 2)
    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["r3"]  # within retention
    first, second = UsageDaily.objects.order_by("day")
    assert (first.calls, first.settled_calls, first.cost_usd, first.input_tokens) == (2, 2, Decimal("0.3"), 200)
    assert (second.calls, second.cost_usd, second.latency_ms_total) == (1, Decimal("0.3"), 40)
    assert first.day == (NOW - timedelta(days=50)).date() and first.channel == "ch_old"
    roll_up_usage.delay()  # again: nothing left to count twice
    roll_up_usage.delay()
    wait_for(lambda: not retention.days_to_roll(retention.cutoff()))
    assert sum(UsageDaily.objects.values_list("calls", flat=True)) == 3
    earned_after = reports.earnings(bob.pk)
    assert (earned_after["calls"], earned_after["earned_total"]) == (
        earned_before["calls"],
        earned_before["earned_total"],
    )
    assert earned_after["per_channel"] == earned_before["per_channel"]
    report = reconcile()
    assert report.ok, report.problems  # keys' spend and the rolled-up settlements agree with the totals


@pytest.mark.services
def test_two_rollers_at_once_count_each_record_once(history):
    rolled, errors = [], []

    def roll():
        try:
            rolled.extend(retention.roll_up())
        except Exception as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sum(day.records for day in rolled) == 3
    assert sum(UsageDaily.objects.values_list("calls", flat=True)) == 3 and reconcile().ok


def test_export_usage_gives_the_daily_totals_for_rolled_up_days(history):
    retention.roll_up()
    out = io.StringIO()
    start, end = (NOW - timedelta(days=60)).date(), (NOW + timedelta(days=1)).date()
    call_command("export_usage", "--from", start.isoformat(), "--to", end.isoformat(), stdout=out, stderr=io.StringIO())
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["request_id"], r["calls"], r["cost_usd"]) for r in rows] == [
        ("daily total", "2", "0.30000000"),
        ("daily total", "1", "0.30000000"),
        ("r3", "1", "0.40000000"),
    ]
    assert rows[0]["key"] == "old key" and rows[0]["latency_ms"] == "40" and rows[0]["user"] == "alice"


def test_reconcile_notices_tampered_totals_and_a_lost_record(history, bob, carol):
    retention.roll_up()
    assert reconcile().ok
    UsageDaily.objects.filter(calls=2).update(owner_cut_usd=Decimal("0"))
    problems = reconcile().problems
    assert any("as owners' cuts" in p for p in problems), problems
    UsageDaily.objects.filter(calls=2).update(owner_cut_usd=Decimal("0.075"))
    assert reconcile().ok
    UsageDaily.objects.filter(calls=2).update(owner=carol)  # the same sums, paid to someone else
    problems = reconcile().problems
    assert any(f"as owners' cuts for user #{carol.pk}" in p for p in problems), problems
    UsageDaily.objects.filter(calls=2).update(owner=bob)
    assert reconcile().ok
    UsageRecord.objects.filter(request_id="r3").delete()  # a call newer than every rolled-up one, lost
    problems = reconcile().problems
    assert any("bills no call" in p for p in problems) and any("API key" in p for p in problems), problems


def test_the_retention_is_never_shorter_than_the_charts_and_spend_limits_need(settings):
    settings.TOKENHUB_USAGE_RETENTION_DAYS = 1
    assert retention.cutoff(NOW).date() == (NOW - timedelta(days=retention.MIN_RETENTION_DAYS)).date()
