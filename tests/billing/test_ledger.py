from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import keys
from billing import ledger
from billing.models import Account, Entry, Hold, HoldStatus, Transaction, UsageRecord, UsageStatus
from billing.pricing import Prices, Usage, cost_of, estimate_max_cost
from tests.billing.conftest import fund

pytestmark = pytest.mark.django_db

MINI = Prices(input=Decimal("0.15"), output=Decimal("0.6"))


def test_hold_moves_the_estimate_and_settle_splits_the_real_cost(alice, bob, assert_ledger_whole):
    fund(alice, "1.00")
    key, _raw = keys.create_key(alice, "k")
    estimate = estimate_max_cost(1000, 1000, MINI)  # 0.00075
    ledger.hold(user_id=alice.pk, amount=estimate, request_id="req-1", api_key_id=key.pk, model="gpt-4o-mini")
    assert ledger.balance_of(alice.pk) == Decimal("1.00") - estimate
    usage = Usage(input_tokens=400, output_tokens=100)
    cost = cost_of(usage, MINI)  # 0.00006 + 0.00006 = 0.00012
    record = ledger.settle(
        request_id="req-1",
        cost=cost,
        usage=usage,
        owner_id=bob.pk,
        owner_cut=Decimal("0.2"),
        model="gpt-4o-mini",
        channel="ch_x",
        latency_ms=12,
    )
    assert record.cost_usd == Decimal("0.00012000")
    assert record.owner_cut_usd == Decimal("0.00002400") and record.platform_usd == Decimal("0.00009600")
    assert ledger.balance_of(alice.pk) == Decimal("1.00") - cost
    assert ledger.earnings_of(bob.pk) == Decimal("0.000024")
    revenue = Account.objects.get(code="platform:revenue")
    assert ledger.derived_balance(revenue) == Decimal("0.000096")
    key.refresh_from_db()
    assert key.spent_usd == cost
    assert Hold.objects.get(request_id="req-1").status == HoldStatus.SETTLED
    assert_ledger_whole()


def test_every_transaction_sums_to_zero(alice, bob):
    fund(alice, "5")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.5"), request_id="r")
    ledger.settle(
        request_id="r", cost=Decimal("0.3"), usage=Usage(output_tokens=1), owner_id=bob.pk, owner_cut=Decimal("0.5")
    )
    for txn in Transaction.objects.all():
        assert sum(e.amount for e in txn.entries.all()) == 0


def test_settling_twice_changes_nothing(alice, bob):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.1"), request_id="twice")
    kwargs = dict(
        request_id="twice",
        cost=Decimal("0.05"),
        usage=Usage(output_tokens=5),
        owner_id=bob.pk,
        owner_cut=Decimal("0.1"),
    )
    first = ledger.settle(**kwargs)
    counts = (Transaction.objects.count(), Entry.objects.count(), UsageRecord.objects.count())
    second = ledger.settle(**kwargs)
    assert second.pk == first.pk
    assert (Transaction.objects.count(), Entry.objects.count(), UsageRecord.objects.count()) == counts
    assert ledger.balance_of(alice.pk) == Decimal("0.95")


def test_holding_twice_with_one_request_id_holds_once(alice):
    fund(alice, "1")
    first = ledger.hold(user_id=alice.pk, amount=Decimal("0.4"), request_id="same")
    second = ledger.hold(user_id=alice.pk, amount=Decimal("0.4"), request_id="same")
    assert first.pk == second.pk
    assert ledger.balance_of(alice.pk) == Decimal("0.6")


@pytest.mark.parametrize("cap", [None, "1.00"])
def test_a_hold_written_before_is_the_answer_even_when_it_took_the_whole_balance_or_cap(alice, cap):
    """A batch that committed but whose answer was lost sends its calls here again: the request id
    decides before any debit, so the call is not refused for the money its own hold took."""
    fund(alice, "1.00")
    key, _raw = keys.create_key(alice, "k", spend_cap_usd=Decimal(cap) if cap else None)
    first = ledger.hold(user_id=alice.pk, amount=Decimal("1.00"), request_id="lost-answer", api_key_id=key.pk)
    again = ledger.hold(user_id=alice.pk, amount=Decimal("1.00"), request_id="lost-answer", api_key_id=key.pk)
    assert again.pk == first.pk
    assert ledger.balance_of(alice.pk) == Decimal("0")
    assert Transaction.objects.filter(kind="hold").count() == 1


def test_insufficient_balance_is_refused_clearly_and_changes_nothing(alice):
    fund(alice, "0.10")
    with pytest.raises(ledger.InsufficientBalance, match=r"insufficient balance: need \$0.25, have \$0.10"):
        ledger.hold(user_id=alice.pk, amount=Decimal("0.25"), request_id="too-much")
    assert ledger.balance_of(alice.pk) == Decimal("0.10")
    assert not Hold.objects.filter(request_id="too-much").exists()
    assert not Transaction.objects.filter(kind="hold").exists()


def test_spend_cap_refuses_a_hold_beyond_it(alice):
    fund(alice, "10")
    key, _raw = keys.create_key(alice, "capped", spend_cap_usd=Decimal("0.50"))
    ledger.hold(user_id=alice.pk, amount=Decimal("0.40"), request_id="a", api_key_id=key.pk)
    ledger.settle(request_id="a", cost=Decimal("0.40"), usage=Usage(output_tokens=1))
    with pytest.raises(ledger.SpendCapReached, match="spend cap"):
        ledger.hold(user_id=alice.pk, amount=Decimal("0.20"), request_id="b", api_key_id=key.pk)


def test_refund_releases_the_whole_hold(alice):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.3"), request_id="fail", model="m")
    record = ledger.release(request_id="fail", error="upstream 500")
    assert record.status == UsageStatus.FAILED and record.cost_usd == 0
    assert ledger.balance_of(alice.pk) == Decimal("1")
    assert Hold.objects.get(request_id="fail").status == HoldStatus.RELEASED


def test_partial_settle_bills_only_what_was_delivered(alice, bob, assert_ledger_whole):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="cut")
    usage = Usage(input_tokens=10, output_tokens=7)
    record = ledger.settle(
        request_id="cut",
        cost=cost_of(usage, MINI),
        usage=usage,
        owner_id=bob.pk,
        owner_cut=Decimal("0.3"),
        status=UsageStatus.PARTIAL,
        error="upstream closed mid-stream",
    )
    assert record.status == UsageStatus.PARTIAL
    assert ledger.balance_of(alice.pk) == Decimal("1") - record.cost_usd
    assert_ledger_whole()


def test_a_cost_beyond_the_hold_is_charged_at_the_hold_and_the_excess_recorded_not_billed(
    alice, bob, assert_ledger_whole
):
    fund(alice, "10")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.02"), request_id="absurd")
    usage = Usage(output_tokens=2_000_000_000)
    record = ledger.settle(
        request_id="absurd", cost=Decimal("5"), usage=usage, owner_id=bob.pk, owner_cut=Decimal("0.5")
    )
    assert record.cost_usd == Decimal("0.02") and record.excess_usd == Decimal("4.98")
    assert UsageRecord.objects.get(request_id="absurd").excess_usd == Decimal("4.98")
    assert ledger.balance_of(alice.pk) == Decimal("9.98")
    assert ledger.earnings_of(bob.pk) == Decimal("0.01")
    assert_ledger_whole()


def test_a_cached_balance_cannot_go_negative_even_by_hand(alice):
    fund(alice, "1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(code=f"user:{alice.pk}").update(balance=Decimal("-1"))


def test_grant_and_debit_record_who_acted(alice):
    ledger.grant(user_id=alice.pk, amount=Decimal("2"), memo="welcome", actor="admin:root")
    txn = ledger.grant(user_id=alice.pk, amount=Decimal("-0.5"), memo="correction", actor="cli:ops")
    assert txn.actor == "cli:ops" and ledger.balance_of(alice.pk) == Decimal("1.5")
    with pytest.raises(ledger.InsufficientBalance):
        ledger.grant(user_id=alice.pk, amount=Decimal("-5"), memo="too much", actor="cli:ops")
    assert ledger.balance_of(alice.pk) == Decimal("1.5")


def test_more_than_eight_decimal_places_is_refused(alice):
    with pytest.raises(ValueError, match="8 decimal places"):
        ledger.grant(user_id=alice.pk, amount=Decimal("0.000000001"), memo="x", actor="t")


def test_checkin_is_once_per_day(alice):
    today = timezone.now().date()
    first = ledger.checkin(user_id=alice.pk, day=today, amount=Decimal("0.10"))
    second = ledger.checkin(user_id=alice.pk, day=today, amount=Decimal("0.10"))
    assert first.pk == second.pk and ledger.balance_of(alice.pk) == Decimal("0.10")
    ledger.checkin(user_id=alice.pk, day=today + timedelta(days=1), amount=Decimal("0.10"))
    assert ledger.balance_of(alice.pk) == Decimal("0.20")


def test_owner_moves_earnings_and_requests_a_payout(alice, bob, admin_user, assert_ledger_whole):
    fund(alice, "10")
    ledger.hold(user_id=alice.pk, amount=Decimal("5"), request_id="big")
    ledger.settle(
        request_id="big", cost=Decimal("4"), usage=Usage(output_tokens=1), owner_id=bob.pk, owner_cut=Decimal("0.5")
    )
    assert ledger.earnings_of(bob.pk) == Decimal("2")
    ledger.move_earnings_to_balance(owner_id=bob.pk, amount=Decimal("0.5"))
    assert ledger.balance_of(bob.pk) == Decimal("0.5") and ledger.earnings_of(bob.pk) == Decimal("1.5")
    with pytest.raises(ledger.LedgerError, match="at most your available earnings"):
        ledger.request_payout(owner_id=bob.pk, amount=Decimal("2"), destination="iban")
    payout = ledger.request_payout(owner_id=bob.pk, amount=Decimal("1"), destination="iban DE00")
    assert ledger.earnings_of(bob.pk) == Decimal("0.5")
    assert ledger.decide_payout(payout_id=payout.pk, paid=False, actor="admin:root") is True
    assert ledger.decide_payout(payout_id=payout.pk, paid=True, actor="admin:root") is False  # already decided
    assert ledger.earnings_of(bob.pk) == Decimal("1.5")
    second = ledger.request_payout(owner_id=bob.pk, amount=Decimal("1.5"), destination="iban DE00")
    assert ledger.decide_payout(payout_id=second.pk, paid=True, actor="admin:root")
    assert ledger.earnings_of(bob.pk) == Decimal("0")
    assert_ledger_whole()


def test_stale_holds_are_released_by_the_sweeper(alice):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.4"), request_id="old")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.1"), request_id="fresh")
    Hold.objects.filter(request_id="old").update(created_at=timezone.now() - timedelta(hours=2))
    assert ledger.release_stale_holds(older_than_seconds=1800) == 1
    assert UsageRecord.objects.get(request_id="old").status == UsageStatus.EXPIRED
    assert Hold.objects.get(request_id="fresh").status == HoldStatus.OPEN
    assert ledger.balance_of(alice.pk) == Decimal("0.9")


def test_signup_credit_is_granted_once_when_configured(settings):
    from accounts.models import User

    settings.TOKENHUB_SIGNUP_GRANT_USD = Decimal("0.50")
    user = User.objects.create_user("newbie")
    user.save()  # a later save grants nothing more
    assert ledger.balance_of(user.pk) == Decimal("0.50")
    settings.TOKENHUB_SIGNUP_GRANT_USD = Decimal("0")
    assert ledger.balance_of(User.objects.create_user("plain").pk) == 0


def test_settle_bills_usage_at_the_prices_captured_on_the_hold(alice):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="priced", prices=MINI, model="gpt-4o-mini")
    # A price change after the call started (the catalog is not consulted at settlement).
    usage = Usage(input_tokens=1, output_tokens=1)
    record = ledger.settle(request_id="priced", usage=usage)
    assert record.cost_usd == Decimal("0.00000075")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.01"), request_id="unpriced")
    with pytest.raises(ValueError, match="captured no prices"):
        ledger.settle(request_id="unpriced", usage=usage)
