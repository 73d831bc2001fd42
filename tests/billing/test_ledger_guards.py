"""Tampering `reconcile` finds, and what the database refuses outright (issue 15, item 6).

Every tampering here is balanced or leaves the cached balances alone, so the zero-sum and
cached-balance checks alone pass it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F

from accounts import keys
from billing import ledger
from billing.models import Account, Entry, Transaction, UsageRecord
from billing.pricing import Usage
from billing.reconcile import reconcile
from tests.billing.conftest import fund, guards_off

pytestmark = pytest.mark.django_db

CENT = Decimal("0.01")
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's")


@pytest.fixture
def settled_call(alice, bob, assert_ledger_whole):
    """alice's call on bob's channel: a hold of 1, a cost of 0.5, bob's cut 20%, through alice's key."""
    fund(alice, "2")
    key, _raw = keys.create_key(alice, "k")
    ledger.hold(user_id=alice.pk, amount=Decimal("1"), request_id="call-1", api_key_id=key.pk)
    record = ledger.settle(
        request_id="call-1",
        usage=Usage(output_tokens=1),
        cost=Decimal("0.5"),
        owner_id=bob.pk,
        owner_cut=Decimal("0.2"),
    )
    assert_ledger_whole()  # so any problem found below is the tampering's
    return UsageRecord.objects.get(pk=record.pk)


def _leg(record: UsageRecord, code: str):
    return Entry.objects.filter(transaction_id=record.transaction_id, account__code=code)


def test_reconcile_finds_earnings_moved_to_revenue_inside_a_settlement(settled_call, bob):
    with guards_off():
        _leg(settled_call, f"owner:{bob.pk}").update(amount=F("amount") - CENT)
        _leg(settled_call, "platform:revenue").update(amount=F("amount") + CENT)
    problems = reconcile().problems
    assert any("call call-1" in p and "owner 0.09000000, platform 0.41000000" in p for p in problems), problems


def test_reconcile_finds_earnings_paid_to_another_owner_inside_a_settlement(settled_call, bob, carol):
    carols = ledger.owner_account(carol.pk)
    with guards_off():
        _leg(settled_call, f"owner:{bob.pk}").update(account=carols)
    problems = reconcile().problems
    assert any("call call-1" in p and "owner 0.00000000" in p and "1 other leg" in p for p in problems), problems


def test_reconcile_finds_a_balanced_leg_to_revenue_added_to_a_payout(settled_call, bob):
    payout = ledger.request_payout(owner_id=bob.pk, amount=Decimal("0.05"), destination="IBAN")
    txn = Transaction.objects.get(idempotency_key=f"payout-request:{payout.public_id}")
    with guards_off():
        Entry.objects.bulk_create(
            [
                Entry(transaction=txn, account=ledger.owner_account(bob.pk), amount=-CENT),
                Entry(transaction=txn, account=ledger.platform_account("revenue"), amount=CENT),
            ]
        )
    problems = reconcile().problems
    assert f"transaction #{txn.pk} (payout_request) has a leg on platform:revenue" in problems, problems


def test_reconcile_finds_earnings_moved_to_another_users_balance(settled_call, bob, carol):
    moved = ledger.move_earnings_to_balance(owner_id=bob.pk, amount=Decimal("0.05"))
    with guards_off():
        Entry.objects.filter(transaction=moved, account__code=f"user:{bob.pk}").update(
            account=ledger.user_account(carol.pk)
        )
        Account.objects.filter(code=f"user:{bob.pk}").update(balance=0)
        Account.objects.filter(code=f"user:{carol.pk}").update(balance=Decimal("0.05"))
    assert f"transaction #{moved.pk} moves money between 2 users" in reconcile().problems


def test_reconcile_finds_a_settlement_that_bills_no_call(alice, bob):
    fund(alice, "1")
    with transaction.atomic():
        ledger.posting.transfer(
            "settle", [(ledger.user_account(alice.pk), -CENT), (ledger.platform_account("revenue"), CENT)], memo="x"
        )
    assert any("bills no call" in p for p in reconcile().problems)


@pytest.mark.parametrize("field", ["cost_usd", "owner_cut_usd", "platform_usd"])
def test_reconcile_finds_a_usage_record_that_disagrees_with_its_settlement(settled_call, field):
    UsageRecord.objects.filter(pk=settled_call.pk).update(**{field: F(field) + CENT})
    problems = reconcile().problems
    assert any(p.startswith("call call-1 ") for p in problems), problems


@pytest.mark.parametrize("kind", ["user", "hold"])
def test_reconcile_finds_a_cached_balance_gone_null(settled_call, alice, kind):
    with guards_off():
        Account.objects.filter(code=f"{kind}:{alice.pk}").update(balance=None)
    assert f"account {kind}:{alice.pk} has no cached balance" in reconcile().problems


def test_reconcile_finds_a_key_whose_spend_disagrees_with_its_calls(settled_call):
    key = settled_call.api_key
    type(key).objects.filter(pk=key.pk).update(spent_usd=F("spent_usd") - CENT)
    problems = reconcile().problems
    assert f"API key {key.public_id} has spent 0.49000000 but its calls were charged 0.50000000" in problems


def test_reconcile_finds_a_key_whose_reservation_disagrees_with_its_open_holds(alice):
    fund(alice, "2")
    key, _raw = keys.create_key(alice, "k", spend_cap_usd=Decimal("5"))
    ledger.hold(user_id=alice.pk, amount=Decimal("1"), request_id="open-1", api_key_id=key.pk)
    assert reconcile().problems == []
    type(key).objects.filter(pk=key.pk).update(reserved_usd=F("reserved_usd") - CENT)  # room under the cap
    problems = reconcile().problems
    assert (
        f"API key {key.public_id} reserves 0.99000000 for calls in flight but its open holds add up to "
        "1.00000000" in problems
    )


@pytest.mark.parametrize("kind", ["user", "hold"])
def test_the_database_refuses_a_null_cached_balance(alice, kind):
    fund(alice, "1")
    ledger.accounts.account(*ledger.accounts.hold_spec(alice.pk))
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(code=f"{kind}:{alice.pk}").update(balance=None)


def test_derived_accounts_keep_no_cached_balance(settled_call, bob):
    assert Account.objects.get(code=f"owner:{bob.pk}").balance is None
    assert Account.objects.get(code="platform:revenue").balance is None


def _insert_entries(txn_id: int, *legs: tuple[int, Decimal]) -> None:
    values = ", ".join(["(%s, %s, %s)"] * len(legs))
    params = [v for account_id, amount in legs for v in (txn_id, account_id, amount)]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO billing_entry (transaction_id, account_id, amount) VALUES {values}", params)


@pytest.fixture
def two_accounts(db):
    txn = Transaction.objects.create(kind="adjust", memo="raw")
    return txn.pk, ledger.platform_account("adjustments").pk, ledger.platform_account("promotions").pk


@postgresql_only
def test_the_database_accepts_a_balanced_raw_insert(two_accounts):
    txn_id, a, b = two_accounts
    _insert_entries(txn_id, (a, -CENT), (b, CENT))
    assert Entry.objects.filter(transaction_id=txn_id).count() == 2


@postgresql_only
def test_the_database_refuses_an_unbalanced_raw_insert(two_accounts):
    txn_id, a, b = two_accounts
    with pytest.raises(IntegrityError, match=f"transaction {txn_id} sum to 0.01"), transaction.atomic():
        _insert_entries(txn_id, (a, -CENT), (b, CENT + CENT))
    with pytest.raises(IntegrityError, match="sum to"), transaction.atomic():
        _insert_entries(txn_id, (a, CENT))


@postgresql_only
def test_the_database_refuses_a_transaction_split_over_two_inserts(two_accounts):
    # Each half is unbalanced on its own: the rule is "all of a transaction's entries in one INSERT".
    txn_id, a, b = two_accounts
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_entries(txn_id, (a, -CENT))
        _insert_entries(txn_id, (b, CENT))


@postgresql_only
def test_the_database_refuses_an_unbalanced_batch_among_balanced_ones(two_accounts):
    txn_id, a, b = two_accounts
    other = Transaction.objects.create(kind="adjust", memo="raw 2").pk
    with connection.cursor() as cursor, pytest.raises(IntegrityError), transaction.atomic():
        cursor.execute(
            "INSERT INTO billing_entry (transaction_id, account_id, amount) VALUES (%s, %s, -1), (%s, %s, 1), "
            "(%s, %s, -1), (%s, %s, 2)",
            [txn_id, a, txn_id, b, other, a, other, b],
        )


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_entry SET amount = amount + 0.01",
        "UPDATE billing_entry SET account_id = account_id",
        "DELETE FROM billing_entry",
        "UPDATE billing_transaction SET memo = 'edited'",
        "DELETE FROM billing_transaction WHERE id NOT IN (SELECT transaction_id FROM billing_entry)",
    ],
)
def test_the_database_refuses_to_edit_or_delete_the_ledger(alice, statement):
    fund(alice, "1")
    Transaction.objects.create(kind="adjust", memo="empty")  # something the last DELETE could remove
    with connection.cursor() as cursor, pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        cursor.execute(statement)
    assert Entry.objects.filter(account__code=f"user:{alice.pk}").get().amount == 1
