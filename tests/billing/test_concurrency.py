"""Many requests at one balance: no overdraft, one winner per code. On PostgreSQL, with real threads."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts import keys
from accounts.models import ApiKey
from billing import codes, ledger
from billing.models import Account, Hold
from billing.pricing import Usage
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
            request_id=f"s-{index}",
            cost=Decimal("0.03"),
            usage=Usage(output_tokens=3),
            owner_id=bob.pk,
            owner_cut=Decimal("0.25"),
        )
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
        await ledger.asettle(request_id=f"a-{index}", cost=Decimal("0.004"), usage=Usage(output_tokens=4))

    async def all_calls():
        await asyncio.gather(*(one(i) for i in range(calls)))

    async_to_sync(all_calls)()
    assert ledger.balance_of(alice.pk) == Decimal("5") - calls * Decimal("0.004")
    assert reconcile().problems == []


# --- A spend cap counts the calls in flight ------------------------------------------------------


def naive_capped_hold(alice, key_pk: int, index: int) -> bool:
    """What the cap check must not do: compare what is spent (settled calls only), then hold."""
    key = ApiKey.objects.get(pk=key_pk)
    time.sleep(0.01)
    if key.spent_usd + Decimal("0.30") > key.spend_cap_usd:
        return False
    ledger.hold(user_id=alice.pk, amount=Decimal("0.30"), request_id=f"n-{index}")
    return True


def test_a_cap_compared_with_settled_spend_alone_admits_every_call_in_flight(alice):
    fund(alice, "10.00")
    key, _raw = keys.create_key(alice, "capped", spend_cap_usd=Decimal("1"))
    wins = run_concurrently(lambda i: naive_capped_hold(alice, key.pk, i), 20)
    assert sum(wins) == 20  # $6 in flight on a $1 cap: nothing is spent until a call settles


def capped_hold(alice, key, index: int) -> bool:
    try:
        ledger.hold(user_id=alice.pk, amount=Decimal("0.30"), request_id=f"k-{index}", api_key_id=key.pk)
    except ledger.SpendCapReached:
        return False
    return True


def test_twenty_concurrent_holds_on_a_one_dollar_cap_admit_exactly_three(alice):
    fund(alice, "10.00")
    key, _raw = keys.create_key(alice, "capped", spend_cap_usd=Decimal("1"))
    wins = run_concurrently(lambda i: capped_hold(alice, key, i), 20)
    assert sum(wins) == 3
    key.refresh_from_db()
    assert key.reserved_usd == Decimal("0.90") and key.spent_usd == 0
    for index in range(20):
        with contextlib.suppress(Hold.DoesNotExist):
            ledger.settle(request_id=f"k-{index}", cost=Decimal("0.25"), usage=Usage(output_tokens=1))
    key.refresh_from_db()
    assert key.reserved_usd == 0 and key.spent_usd == Decimal("0.75") <= key.spend_cap_usd
    assert ledger.balance_of(alice.pk) == Decimal("9.25")
    assert reconcile().problems == []


def test_twenty_concurrent_batched_holds_on_a_one_dollar_cap_admit_exactly_three(alice):
    import asyncio

    from asgiref.sync import async_to_sync

    from billing.ledger import batched
    from billing.pricing import Prices

    fund(alice, "10.00")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="warm")  # the holds account exists
    ledger.release(request_id="warm")
    key, _raw = keys.create_key(alice, "capped", spend_cap_usd=Decimal("1"))
    prices = Prices(input=Decimal("1"), output=Decimal("2"))

    async def attempt(index: int):
        try:
            return await batched.hold(
                user_id=alice.pk,
                amount=Decimal("0.30"),
                request_id=f"b-{index}",
                api_key_id=key.pk,
                model="m",
                prices=prices,
            )
        except ledger.SpendCapReached as refusal:
            return refusal

    async def all_calls():
        try:
            made = await asyncio.gather(*(attempt(i) for i in range(20)))
            for hold in made:
                if isinstance(hold, Hold):
                    await batched.settle(hold, usage=Usage(), cost=Decimal("0.25"))
            return made
        finally:
            await batched.close()

    made = async_to_sync(all_calls)()
    refusals = [r for r in made if isinstance(r, ledger.SpendCapReached)]
    assert len(refusals) == 17 and "counting calls in flight" in str(refusals[0])
    key.refresh_from_db()
    assert key.reserved_usd == 0 and key.spent_usd == Decimal("0.75")
    assert ledger.balance_of(alice.pk) == Decimal("9.25")
    assert reconcile().problems == []
