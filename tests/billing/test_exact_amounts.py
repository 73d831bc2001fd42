"""The embedded SQLite default never refuses a balance it displays as enough (issue 15, item 7).

SQLite computes decimal columns as floats; these run on both backends, and fail on SQLite
without `sql.at_8_places`.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from billing import ledger
from billing.models import Account
from billing.pricing import Usage
from tests.billing.conftest import fund

pytestmark = pytest.mark.django_db


def test_a_balance_of_point_seven_minus_point_four_covers_a_point_three_hold(alice, assert_ledger_whole):
    fund(alice, "0.7")
    ledger.grant(user_id=alice.pk, amount=Decimal("-0.4"), memo="debit", actor="test")
    assert ledger.balance_of(alice.pk) == Decimal("0.3")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.3"), request_id="exact")
    assert ledger.balance_of(alice.pk) == 0
    assert Account.objects.get(code=f"hold:{alice.pk}").balance == Decimal("0.3")
    assert_ledger_whole()


def test_holds_of_point_one_and_point_two_release_to_exactly_zero(alice, assert_ledger_whole):
    fund(alice, "0.3")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.1"), request_id="a")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.2"), request_id="b")
    ledger.release(request_id="b")
    ledger.release(request_id="a")
    assert Account.objects.get(code=f"hold:{alice.pk}").balance == 0
    assert ledger.balance_of(alice.pk) == Decimal("0.3")
    assert_ledger_whole()


def test_a_settlement_may_take_exactly_the_balance_left(alice, assert_ledger_whole):
    # The hold takes exactly what the balance shows, and the settlement all of the hold.
    fund(alice, "0.7")
    ledger.grant(user_id=alice.pk, amount=Decimal("-0.4"), memo="debit", actor="test")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.3"), request_id="all")
    record = ledger.settle(request_id="all", usage=Usage(), cost=Decimal("0.3"))
    assert record.cost_usd == Decimal("0.3") and record.excess_usd == 0
    assert ledger.balance_of(alice.pk) == 0
    assert_ledger_whole()


amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000"), places=8)
runs = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(credits=st.lists(amounts, min_size=1, max_size=4), debits=st.lists(amounts, max_size=4))
def test_whatever_balance_is_displayed_can_be_held_to_exactly_zero(credits, debits):
    user = User.objects.create_user(f"exact-{next(runs)}")
    expected = Decimal(0)
    for amount in credits:
        fund(user, str(amount))
        expected += amount
    for amount in debits:
        if amount <= expected:
            ledger.grant(user_id=user.pk, amount=-amount, memo="debit", actor="test")
            expected -= amount
    shown = ledger.balance_of(user.pk)
    assert shown == expected
    if shown:
        ledger.hold(user_id=user.pk, amount=shown, request_id=f"all-{user.pk}")
    assert ledger.balance_of(user.pk) == 0
    with pytest.raises(ledger.InsufficientBalance):
        ledger.hold(user_id=user.pk, amount=Decimal("0.00000001"), request_id=f"more-{user.pk}")
