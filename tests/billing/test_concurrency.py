"""Many requests at one balance: no overdraft, one winner per code. On PostgreSQL, with real threads."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing import codes, ledger
from billing.models import Account
from billing.reconcile import reconcile
from tests.billing.conftest import fund

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

THREADS = 50


def run_concurrently(function, count: int) -> list:
    barrier = threading.Barrier(count)

    def worker(index: int):
        try:
            barrier.wait()
            return function(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def naive_hold(account_pk: int, amount: Decimal) -> bool:
    """What the ledger must not do: read the balance, decide, then write it back."""
    with transaction.atomic():
        balance = Account.objects.get(pk=account_pk).balance
        time.sleep(0.01)  # the window any real request has between its read and its write
        if balance < amount:
            return False
        Account.objects.filter(pk=account_pk).update(balance=balance - amount)
        return True


def test_without_the_conditional_update_the_race_overspends(alice):
    fund(alice, "10.00")
    account = Account.objects.get(code=f"user:{alice.pk}")
    wins = run_concurrently(lambda i: naive_hold(account.pk, Decimal("0.30")), THREADS)
    # 10.00 covers 33 holds of 0.30, yet far more "succeed": lost updates.
    assert sum(wins) > 33


def test_fifty_concurrent_holds_never_overdraw(alice):
    fund(alice, "10.00")

    def attempt(index: int) -> bool:
        try:
            ledger.hold(user_id=alice.pk, amount=Decimal("0.30"), request_id=f"c-{index}")
        except ledger.InsufficientBalance:
            return False
        return True

    wins = run_concurrently(attempt, THREADS)
    assert sum(wins) == 33
    assert ledger.balance_of(alice.pk) == Decimal("0.10")
    assert reconcile().problems == []


def test_fifty_concurrent_settles_and_holds_keep_the_ledger_whole(alice, bob):
    fund(alice, "3.00")
    for index in range(THREADS):
        ledger.hold(user_id=alice.pk, amount=Decimal("0.05"), request_id=f"s-{index}")

    def settle_or_hold(index: int):
        ledger.settle(
            request_id=f"s-{index}", cost=Decimal("0.03"), usage=ledger.Usage(output_tokens=3),
            owner_id=bob.pk, owner_cut=Decimal("0.25"),
        )  # fmt: skip
        with contextlib.suppress(ledger.InsufficientBalance):
            ledger.hold(user_id=alice.pk, amount=Decimal("0.02"), request_id=f"t-{index}")

    run_concurrently(settle_or_hold, THREADS)
    assert ledger.earnings_of(bob.pk) == Decimal("0.375")
    assert reconcile().problems == []
    assert ledger.balance_of(alice.pk) >= 0


def test_racing_redemption_has_exactly_one_winner(alice, bob, carol):
    batch = codes.create_batch(label="race", amount=Decimal("5"), count=1, expires_at=None, created_by="test")
    codes.fill_batch(batch.pk)
    code = batch.codes.get().code
    users = [alice, bob, carol] * 4

    def attempt(index: int):
        try:
            ledger.redeem(user_id=users[index].pk, code=code)
        except ledger.CodeRefused as refusal:
            return refusal.reason
        return "won"

    outcomes = run_concurrently(attempt, len(users))
    assert outcomes.count("won") == 1
    assert set(outcomes) == {"won", "used"}
    assert sum(ledger.balance_of(u.pk) for u in (alice, bob, carol)) == Decimal("5")


def test_concurrent_checkins_book_one_reward(alice):
    from django.utils import timezone

    today = timezone.now().date()
    run_concurrently(lambda i: ledger.checkin(user_id=alice.pk, day=today, amount=Decimal("0.10")), 20)
    assert ledger.balance_of(alice.pk) == Decimal("0.10")


def test_async_holds_and_settles_borrow_connections_briefly(alice, settings):
    """More concurrent async calls than the pool has connections: each borrows one and gives it back."""
    import asyncio

    from asgiref.sync import async_to_sync

    fund(alice, "5")
    calls = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"] * 3

    async def one(index: int):
        await ledger.ahold(user_id=alice.pk, amount=Decimal("0.01"), request_id=f"a-{index}")
        await asyncio.sleep(0.05)  # the stream, during which no connection is held
        await ledger.asettle(request_id=f"a-{index}", cost=Decimal("0.004"), usage=ledger.Usage(output_tokens=4))

    async def all_calls():
        await asyncio.gather(*(one(i) for i in range(calls)))

    async_to_sync(all_calls)()
    assert ledger.balance_of(alice.pk) == Decimal("5") - calls * Decimal("0.004")
    assert reconcile().problems == []
