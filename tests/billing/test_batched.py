"""The relay's batched holds and settlements (billing/ledger/batched.py) on PostgreSQL.

Each test runs its calls concurrently in one event loop, as a worker does, so batches of more than
one call really form; the ledger must come out exactly as if each call had been posted alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from billing import ledger
from billing.ledger import batch_statements, batched, batcher
from billing.models import Account, Hold, HoldStatus, Transaction, UsageRecord, UsageStatus
from billing.pricing import Prices, Usage
from tests.billing.conftest import fund

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PRICES = Prices(input=Decimal("1"), output=Decimal("2"))  # $ per 1M tokens
USAGE = Usage(input_tokens=1000, output_tokens=500)  # costs 0.002 at PRICES
COST = Decimal("0.00200000")


def in_one_loop(coroutine_function):
    """Run in a fresh event loop and close that loop's ledger connections afterwards."""

    async def run():
        try:
            return await coroutine_function()
        finally:
            await batched.close()

    return async_to_sync(run)()


async def hold(user, request_id: str, amount: str = "0.01") -> Hold:
    return await batched.hold(
        user_id=user.pk,
        amount=Decimal(amount),
        request_id=request_id,
        api_key_id=None,
        model="m",
        prices=PRICES,
    )


def fund_with_accounts(user, amount: str) -> None:
    """A balance, and the user's holds account created (a first hold and release through the ledger)."""
    fund(user, amount)
    ledger.hold(user_id=user.pk, amount=Decimal("0.01"), request_id=f"warm{user.pk}")
    ledger.release(request_id=f"warm{user.pk}")


def balance(code: str) -> Decimal:
    return Account.objects.get(code=code).balance


def test_concurrent_calls_share_statements_and_come_out_exact(alice, bob, assert_ledger_whole):
    fund_with_accounts(alice, "10.00")
    ledger.owner_account(bob.pk)
    calls = 60
    before = batched.stats.statements

    async def one(index: int):
        made = await hold(alice, f"r{index}")
        await asyncio.sleep(0)
        return await batched.settle(made, usage=USAGE, owner_id=bob.pk, owner_cut=Decimal("0.2"), channel="ch")

    records = in_one_loop(lambda: asyncio.gather(*(one(i) for i in range(calls))))

    assert {r.cost_usd for r in records} == {COST}
    # 60 holds and 60 settlements in far fewer statements: the batches were shared.
    assert batched.stats.statements - before < calls
    assert balance(f"user:{alice.pk}") == Decimal("10.00") - calls * COST
    assert balance(f"hold:{alice.pk}") == 0
    assert ledger.earnings_of(bob.pk) == calls * Decimal("0.00040000")
    assert UsageRecord.objects.filter(request_id__startswith="r", status=UsageStatus.OK).count() == calls
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    for txn in Transaction.objects.filter(idempotency_key__startswith="settle:r")[:5]:
        assert sum(e.amount for e in txn.entries.all()) == 0
        assert txn.entries.count() == 4  # refund, hold released, platform, owner
    assert_ledger_whole()


def test_a_short_balance_in_a_batch_gets_the_ledgers_exact_refusals(alice, assert_ledger_whole):
    fund_with_accounts(alice, "1.00")
    refused = batched.stats.refused

    async def attempt(index: int):
        try:
            return await hold(alice, f"s{index}", amount="0.30")
        except ledger.InsufficientBalance as exc:
            return exc

    results = in_one_loop(lambda: asyncio.gather(*(attempt(i) for i in range(10))))

    holds = [r for r in results if isinstance(r, Hold)]
    refusals = [r for r in results if isinstance(r, ledger.InsufficientBalance)]
    assert len(holds) == 3 and len(refusals) == 7
    assert "insufficient balance" in str(refusals[0])
    assert balance(f"user:{alice.pk}") == Decimal("0.10")
    assert balance(f"hold:{alice.pk}") == Decimal("0.90")
    assert batched.stats.refused == refused  # the batch declined the short user cleanly, no failed statement
    assert_ledger_whole()


def test_missing_accounts_take_the_ledgers_path_once(alice, carol, assert_ledger_whole):
    fund(alice, "1.00")  # a balance, but no holds account and carol has no earnings account yet

    def call(request_id: str):
        async def run():
            made = await hold(alice, request_id)
            return await batched.settle(made, usage=USAGE, owner_id=carol.pk, owner_cut=Decimal("0.5"))

        return run

    record = in_one_loop(call("first"))
    assert record.cost_usd == COST
    assert ledger.earnings_of(carol.pk) == Decimal("0.00100000")
    assert Account.objects.filter(code__in=[f"hold:{alice.pk}", f"owner:{carol.pk}"]).count() == 2

    before = batched.stats.statements
    in_one_loop(call("second"))
    assert batched.stats.statements - before == 2  # now both writes are one batched statement each
    assert ledger.earnings_of(carol.pk) == Decimal("0.00200000")
    assert_ledger_whole()


def test_a_cost_above_the_hold_is_batched_at_the_hold_and_the_excess_recorded(alice, bob, assert_ledger_whole):
    fund_with_accounts(alice, "10.00")
    ledger.owner_account(bob.pk)
    absurd = Usage(input_tokens=10**9, output_tokens=2 * 10**9)  # $5,000 at PRICES

    async def call():
        made = await hold(alice, "absurd", amount="0.01")
        before = batched.stats.statements
        record = await batched.settle(made, usage=absurd, owner_id=bob.pk, owner_cut=Decimal("0.5"))
        return record, batched.stats.statements - before

    record, statements = in_one_loop(call)
    assert statements == 1  # the batch wrote it: no balance to touch, no fallback
    assert record.cost_usd == Decimal("0.01") and record.excess_usd == Decimal("4999.99")
    stored = UsageRecord.objects.get(request_id="absurd")
    assert stored.excess_usd == Decimal("4999.99") and stored.upstream_usd == Decimal("5000")
    assert balance(f"user:{alice.pk}") == Decimal("9.99")
    assert ledger.earnings_of(bob.pk) == Decimal("0.005")
    assert_ledger_whole()


def test_an_explicit_upstream_figure_is_recorded_beside_a_lower_charge_on_both_paths(alice, assert_ledger_whole):
    """An owner's own call is charged less the cut but used the upstream in full: both are recorded."""
    fund_with_accounts(alice, "10.00")

    async def call(request_id):
        made = await hold(alice, request_id)
        return await batched.settle(made, usage=USAGE, cost=Decimal("0.0015"), upstream=COST)

    in_one_loop(lambda: call("own-batched"))
    ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="own-per-call", prices=PRICES)
    ledger.settle(request_id="own-per-call", usage=USAGE, cost=Decimal("0.0015"), upstream=COST)
    for request_id in ("own-batched", "own-per-call"):
        stored = UsageRecord.objects.get(request_id=request_id)
        assert (stored.cost_usd, stored.upstream_usd, stored.excess_usd) == (Decimal("0.0015"), COST, 0)
    assert_ledger_whole()


def test_the_batch_statements_stay_short_enough_for_psycopgs_statement_cache():
    # psycopg parses a statement once and caches it only up to 4096 bytes; longer, every batch pays it.
    assert max(len(batch_statements.HOLDS_SQL.encode()), len(batch_statements.SETTLES_SQL.encode())) <= 4096


def test_settling_twice_returns_the_first_record_and_changes_nothing(alice, assert_ledger_whole):
    fund_with_accounts(alice, "1.00")

    async def twice():
        made = await hold(alice, "twice")
        first = await batched.settle(made, usage=USAGE)
        again = await batched.settle(made, usage=Usage(input_tokens=9, output_tokens=9))
        return first, again

    first, again = in_one_loop(twice)
    assert first.pk == again.pk and again.cost_usd == COST
    assert balance(f"user:{alice.pk}") == Decimal("1.00") - COST
    assert_ledger_whole()


def test_a_release_refunds_the_whole_hold(alice, assert_ledger_whole):
    fund_with_accounts(alice, "1.00")

    async def failed_call():
        made = await hold(alice, "failed", amount="0.25")
        return await batched.release(made, error="upstream 500")

    record = in_one_loop(failed_call)
    assert record.status == UsageStatus.FAILED and record.cost_usd == 0
    assert Hold.objects.get(request_id="failed").status == HoldStatus.RELEASED
    assert balance(f"user:{alice.pk}") == Decimal("1.00")
    assert_ledger_whole()


def test_a_release_is_written_at_once_with_the_settlements_gathered_so_far(alice, settings, assert_ledger_whole):
    # Settlements gather (here for a minute) because nobody waits for them; a failed call's error
    # answer waits for its refund, so a release ends the gathering and takes the others along.
    settings.TOKENHUB_SETTLEMENT_GATHER_MS = 60_000
    fund_with_accounts(alice, "1.00")
    before = batched.stats.statements

    async def two_calls():
        done = await hold(alice, "done", amount="0.25")
        failed = await hold(alice, "failed", amount="0.25")
        settling = asyncio.ensure_future(batched.settle(done, usage=USAGE, channel="ch"))
        await asyncio.sleep(0.05)
        assert not settling.done()  # still gathering
        released = await asyncio.wait_for(batched.release(failed, error="upstream 500"), timeout=30)
        return await settling, released

    settled, released = in_one_loop(two_calls)
    assert batched.stats.statements - before == 3  # two holds, one statement for both settlements
    assert settled.cost_usd == COST and released.status == UsageStatus.FAILED
    assert balance(f"user:{alice.pk}") == Decimal("1.00") - COST
    assert_ledger_whole()


def test_new_holds_wait_while_settlements_are_backed_up_and_go_on_once_they_are_written(
    alice, settings, assert_ledger_whole
):
    # A database that falls behind on settlements must slow the callers down, not grow the queue.
    settings.TOKENHUB_SETTLEMENT_GATHER_MS = 60_000  # nothing is written until a release comes
    settings.TOKENHUB_SETTLEMENT_BACKLOG_MAX = 2
    fund_with_accounts(alice, "1.00")

    async def calls():
        first, second, failed = [await hold(alice, name) for name in ("first", "second", "failed")]
        settling = [asyncio.ensure_future(batched.settle(made, usage=USAGE)) for made in (first, second)]
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(hold(alice, "after"))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # two settlements are waiting: no new hold yet
        assert not await Hold.objects.filter(request_id="after").aexists()
        await batched.release(failed)  # writes the backlog at once
        after = await asyncio.wait_for(waiting, timeout=30)
        await batched.release(after)
        return await asyncio.gather(*settling)

    settled = in_one_loop(calls)
    assert [record.cost_usd for record in settled] == [COST, COST]
    assert balance(f"user:{alice.pk}") == Decimal("1.00") - 2 * COST
    assert_ledger_whole()


def test_a_hold_is_refused_when_the_settlements_stay_backed_up(alice, settings, assert_ledger_whole):
    settings.TOKENHUB_SETTLEMENT_GATHER_MS = 60_000
    settings.TOKENHUB_SETTLEMENT_BACKLOG_MAX = 1
    settings.TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS = 0.2
    fund_with_accounts(alice, "1.00")

    async def calls():
        first, failed = await hold(alice, "first"), await hold(alice, "failed")
        settling = asyncio.ensure_future(batched.settle(first, usage=USAGE))
        await asyncio.sleep(0.05)
        with pytest.raises(batched.LedgerBehind, match="last 1 finished calls are still being recorded"):
            await hold(alice, "refused")
        await batched.release(failed)
        return await settling

    assert in_one_loop(calls).cost_usd == COST
    assert not Hold.objects.filter(request_id="refused").exists()
    assert balance(f"user:{alice.pk}") == Decimal("1.00") - COST
    assert_ledger_whole()


def test_settlements_find_their_holds_by_id_whatever_the_status_index_holds(alice):
    # Under load the (status, created_at) index carries thousands of 'open' entries that await vacuum;
    # a generic plan that scanned them for every batch cost more than the rest of the statement.
    Hold.objects.bulk_create(
        Hold(request_id=f"old{i}", user_id=alice.pk, model="m", amount=Decimal("0.01"), status=HoldStatus.SETTLED)
        for i in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_hold")
        cursor.execute("SET plan_cache_mode = force_generic_plan")  # what a prepared statement ends up with
        cursor.execute(f"PREPARE settle_plan(text) AS {batch_statements.SETTLES_SQL.replace('%(rows)s', '$1')}")
        cursor.execute("EXPLAIN EXECUTE settle_plan('[]')")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE settle_plan")
        cursor.execute("RESET plan_cache_mode")
    scans = [line for line in plan.splitlines() if "Scan" in line and " on billing_hold " in line]
    assert scans and all("billing_hold_pkey" in line for line in scans), plan


def test_an_unbalanced_batch_is_refused_whole_by_the_database(alice, bob, assert_ledger_whole):
    """The safety net: figures that do not sum to zero abort the statement; nothing is written."""
    fund(alice, "1.00")
    ledger.owner_account(bob.pk)
    made = ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="bad", prices=PRICES)
    ledger.platform_account("revenue")
    good = {
        "hold_id": made.id,
        "request_id": "bad",
        "user_id": alice.pk,
        "api_key_id": None,
        "owner_id": bob.pk,
        "held": Decimal("0.01"),
        "refund": Decimal("0.008"),
        "cost_usd": Decimal("0.002"),
        "owner_cut_usd": Decimal("0.0004"),
        "platform_usd": Decimal("0.0016"),
        "excess_usd": 0,
        "kind": "settle",
        "hold_status": "settled",
        "model": "m",
        "channel": "",
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "latency_ms": 1,
        "status": "ok",
        "estimated": False,
        "error": "",
    }
    writers = batcher._Writers()

    async def write(row):
        try:
            return await writers.settles._write([row])
        finally:
            await writers.settles.connection.close()

    with pytest.raises(psycopg.errors.CheckViolation):
        in_one_loop(lambda: write({**good, "platform_usd": Decimal("0.0017")}))
    assert Hold.objects.get(request_id="bad").status == HoldStatus.OPEN
    assert not Transaction.objects.filter(idempotency_key="settle:bad").exists()
    assert balance(f"user:{alice.pk}") == Decimal("0.99")
    assert_ledger_whole()


def test_a_failed_batch_falls_back_call_by_call(alice, assert_ledger_whole):
    """A request id that already has a hold breaks the batch's insert; every call still gets its answer."""
    fund(alice, "1.00")
    existing = ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="dup", prices=PRICES)

    async def both():
        return await asyncio.gather(hold(alice, "dup"), hold(alice, "fresh"))

    refused = batched.stats.refused
    again, fresh = in_one_loop(both)
    assert batched.stats.refused == refused + 1
    assert again.pk == existing.pk  # the ledger's idempotency: the first hold, not a second one
    assert fresh.request_id == "fresh" and Hold.objects.filter(request_id="fresh").count() == 1
    assert balance(f"user:{alice.pk}") == Decimal("0.98")
    assert_ledger_whole()


def test_batching_is_postgresql_only_and_can_be_switched_off(settings):
    assert batched.enabled() == (connection.vendor == "postgresql")
    settings.TOKENHUB_LEDGER_BATCHING = False
    assert not batched.enabled()


def test_a_caller_leaving_during_its_hold_gets_the_money_back(alice, assert_ledger_whole):
    fund_with_accounts(alice, "1.00")

    async def scenario():
        calling = asyncio.create_task(hold(alice, "left", amount="0.40"))
        await asyncio.sleep(0)  # its hold is on the way to the database
        calling.cancel()  # the client disconnected
        with contextlib.suppress(asyncio.CancelledError):
            await calling
        while batched.busy():  # the write lands, then the release
            await asyncio.gather(*batched.busy())

    in_one_loop(scenario)
    left = Hold.objects.get(request_id="left")
    assert left.status == HoldStatus.RELEASED
    assert UsageRecord.objects.get(request_id="left").error == "the caller left before the call started"
    assert balance(f"user:{alice.pk}") == Decimal("1.00")
    assert_ledger_whole()


def test_two_workers_batching_two_users_take_locks_in_one_order(alice, bob, carol, assert_ledger_whole):
    """Two event loops (as two workers) write batches that mix both users: no deadlock, exact balances."""
    import threading

    for user in (alice, bob):
        fund_with_accounts(user, "5.00")
    ledger.owner_account(carol.pk)
    refused = batched.stats.refused
    calls = 40

    def worker(tag: str, first, second):
        async def one(index: int):
            user = first if index % 2 else second
            made = await hold(user, f"{tag}{index}")
            return await batched.settle(made, usage=USAGE, owner_id=carol.pk, owner_cut=Decimal("0.1"))

        try:
            in_one_loop(lambda: asyncio.gather(*(one(i) for i in range(calls))))
        finally:
            connection.close()  # this thread's own (ledger-path) connection

    threads = [
        threading.Thread(target=worker, args=("a", alice, bob)),
        threading.Thread(target=worker, args=("b", bob, alice)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert batched.stats.refused == refused  # a deadlock would have aborted a batch
    assert UsageRecord.objects.filter(status=UsageStatus.OK, request_id__regex=r"^[ab]\d+$").count() == 2 * calls
    for user in (alice, bob):
        assert balance(f"user:{user.pk}") == Decimal("5.00") - calls * COST
    assert ledger.earnings_of(carol.pk) == 2 * calls * Decimal("0.00020000")
    assert_ledger_whole()


async def capped_hold(user, key, request_id: str) -> Hold:
    return await batched.hold(
        user_id=user.pk, amount=Decimal("0.10"), request_id=request_id, api_key_id=key.pk, model="m", prices=PRICES
    )


def test_a_capped_keys_holds_that_fit_are_batched_and_counted_in_flight_until_settled(alice, assert_ledger_whole):
    from accounts import keys

    fund_with_accounts(alice, "10.00")
    key, _raw = keys.create_key(alice, "capped", spend_cap_usd=Decimal("1.00"))
    before = batched.stats.statements

    async def calls():
        made = await asyncio.gather(*(capped_hold(alice, key, f"c{i}") for i in range(10)))
        key_row = await type(key).objects.aget(pk=key.pk)
        settled = await asyncio.gather(*(batched.settle(hold, usage=USAGE) for hold in made))
        return key_row, settled

    in_flight, settled = in_one_loop(calls)
    assert batched.stats.statements - before < 20  # the holds (and settlements) shared statements
    assert in_flight.reserved_usd == Decimal("1.00") and in_flight.spent_usd == 0  # exactly the cap, in flight
    key.refresh_from_db()
    assert key.reserved_usd == 0 and key.spent_usd == 10 * COST
    assert all(record.cost_usd == COST for record in settled)
    assert_ledger_whole()


def test_batched_holds_and_per_call_settlements_of_one_key_take_locks_in_one_order(alice, assert_ledger_whole):
    """Users' balances, then their holds, then keys, on every path: a hold batch locking a key before
    the user's hold account deadlocked against a settlement through the ledger holding that account
    (one that refunds nothing, charging its whole hold, never locks the balance row first)."""
    from accounts import keys

    fund_with_accounts(alice, "50.00")
    key, _raw = keys.create_key(alice, "shared")
    rounds, calls = 4, 40
    for round_ in range(rounds):
        first = [
            ledger.hold(
                user_id=alice.pk, amount=Decimal("0.01"), request_id=f"p{round_}-{i}", api_key_id=key.pk, prices=PRICES
            )
            for i in range(calls)
        ]

        async def mixed(first=first, round_=round_):
            # New calls' holds batch on this loop while earlier ones settle call by call in threads.
            holds = [
                batched.hold(
                    user_id=alice.pk,
                    amount=Decimal("0.01"),
                    request_id=f"n{round_}-{i}",
                    api_key_id=key.pk,
                    model="m",
                    prices=PRICES,
                )
                for i in range(calls)
            ]
            settles = [ledger.asettle(request_id=made.request_id, usage=USAGE, cost=made.amount) for made in first]
            return await asyncio.gather(*holds, *settles)

        in_one_loop(mixed)
    key.refresh_from_db()
    assert key.spent_usd == Decimal("0.01") * rounds * calls
    assert key.reserved_usd == Decimal("0.01") * rounds * calls
    assert Hold.objects.filter(status=HoldStatus.OPEN).count() == rounds * calls
    assert_ledger_whole()


def test_a_hold_batch_that_waits_past_the_lock_timeout_is_cancelled_and_its_calls_take_the_per_call_path(
    alice, settings, assert_ledger_whole
):
    """An operator's open transaction on a caller's balance must not hold up the worker's batches:
    the worker cancels the hold statement it waits on (no transaction: callers wait on every one)."""
    settings.TOKENHUB_LEDGER_LOCK_TIMEOUT_MS = 200
    fund_with_accounts(alice, "1.00")
    refused_before = batched.stats.refused
    blocker = psycopg.connect(**batched.connection_params())
    blocker.execute("SELECT balance FROM billing_account WHERE code = %s FOR UPDATE", [f"user:{alice.pk}"])

    async def held_while_blocked():
        loop = asyncio.get_running_loop()
        # The per-call path waits for the lock without a timeout; end the blocker once the batch gave up.
        loop.call_later(1.0, blocker.rollback)
        made = await hold(alice, "blocked")
        holds = batcher.for_this_loop().holds.connection
        settings_after = await (await holds.execute("SELECT current_setting('lock_timeout')")).fetchone()
        return made, settings_after[0], holds.info.transaction_status

    try:
        made, lock_timeout_after, status_after = in_one_loop(held_while_blocked)
    finally:
        blocker.close()
    assert batched.stats.refused == refused_before + 1
    assert Hold.objects.get(request_id="blocked").pk == made.pk
    # SET LOCAL: nothing of the batch's settings outlives its transaction on the connection.
    assert lock_timeout_after == "0"
    assert status_after == psycopg.pq.TransactionStatus.IDLE
    assert balance(f"user:{alice.pk}") == Decimal("0.99")
    assert_ledger_whole()


def test_a_settlement_batch_that_waits_past_its_lock_timeout_is_refused_and_settled_call_by_call(
    alice, settings, assert_ledger_whole
):
    """A settlement batch is its own transaction with SET LOCAL lock_timeout: past it, PostgreSQL ends
    the statement, the batch is refused whole and the per-call path settles the call once the lock is free."""
    settings.TOKENHUB_LEDGER_LOCK_TIMEOUT_MS = 200
    fund_with_accounts(alice, "1.00")
    made = ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="to-settle", prices=PRICES)
    refused_before = batched.stats.refused
    blocker = psycopg.connect(**batched.connection_params())
    blocker.execute("SELECT balance FROM billing_account WHERE code = %s FOR UPDATE", [f"user:{alice.pk}"])

    async def settled_while_blocked():
        asyncio.get_running_loop().call_later(1.0, blocker.rollback)
        record = await batched.settle(made, usage=USAGE, urgent=True)
        settles = batcher.for_this_loop().settles.connection
        after = await (await settles.execute("SELECT current_setting('lock_timeout')")).fetchone()
        return record, after[0], settles.info.transaction_status

    try:
        record, lock_timeout_after, status_after = in_one_loop(settled_while_blocked)
    finally:
        blocker.close()
    assert batched.stats.refused == refused_before + 1
    assert record.cost_usd == COST and UsageRecord.objects.filter(request_id="to-settle").count() == 1
    assert lock_timeout_after == "0"  # SET LOCAL ended with the batch's transaction
    assert status_after == psycopg.pq.TransactionStatus.IDLE
    assert balance(f"user:{alice.pk}") == Decimal("1.00") - COST
    assert_ledger_whole()
