"""Any sequence of ledger operations keeps every invariant (hypothesis, on the real database)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from billing import codes, ledger
from billing.models import TransactionKind
from billing.pricing import Usage
from billing.reconcile import reconcile

pytestmark = pytest.mark.django_db

money = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("5"), places=8)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(0, 2), money),
        st.tuples(st.just("hold"), st.integers(0, 2), money),
        st.tuples(
            st.just("settle"), st.integers(0, 30), money, st.decimals(min_value=0, max_value=Decimal("0.5"), places=3)
        ),
        st.tuples(st.just("refund"), st.integers(0, 30)),
        st.tuples(st.just("checkin"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("debit"), st.integers(0, 2), money),
    ),
    max_size=25,
)
run_ids = itertools.count()


@settings(
    max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=operations)
def test_any_sequence_of_operations_keeps_the_ledger_whole(ops):
    run = next(run_ids)
    users = [User.objects.create_user(f"p{run}-{i}") for i in range(3)]
    owner = User.objects.create_user(f"p{run}-owner")
    batch = codes.create_batch(label=f"p{run}", amount=Decimal("1.5"), count=3, expires_at=None, created_by="t")
    codes.fill_batch(batch.pk)
    code_values = list(batch.codes.values_list("code", flat=True))
    expected = {u.pk: Decimal(0) for u in users}  # a model of each spendable balance
    open_holds: dict[str, tuple[int, Decimal]] = {}
    requests = itertools.count()

    for op in ops:
        name, *args = op
        if name == "grant":
            user = users[args[0]]
            ledger.grant(user_id=user.pk, amount=args[1], memo="p", actor="t", kind=TransactionKind.GRANT)
            expected[user.pk] += args[1]
        elif name == "debit":
            user = users[args[0]]
            try:
                ledger.grant(user_id=user.pk, amount=-args[1], memo="p", actor="t")
                expected[user.pk] -= args[1]
            except ledger.InsufficientBalance:
                assert expected[user.pk] < args[1]
        elif name == "hold":
            user, request_id = users[args[0]], f"p{run}-r{next(requests)}"
            try:
                ledger.hold(user_id=user.pk, amount=args[1], request_id=request_id)
                expected[user.pk] -= args[1]
                open_holds[request_id] = (user.pk, args[1])
            except ledger.InsufficientBalance:
                assert expected[user.pk] < args[1]
        elif name in {"settle", "refund"} and open_holds:
            request_id = sorted(open_holds)[args[0] % len(open_holds)]
            user_id, held = open_holds.pop(request_id)
            if name == "settle":
                record = ledger.settle(
                    request_id=request_id,
                    cost=args[1],
                    usage=Usage(output_tokens=1),
                    owner_id=owner.pk,
                    owner_cut=args[2],
                )
                expected[user_id] += held - record.cost_usd
                assert record.cost_usd == min(args[1], held) and record.cost_usd + record.excess_usd == args[1]
                assert record.owner_cut_usd + record.platform_usd == record.cost_usd
            else:
                ledger.release(request_id=request_id)
                expected[user_id] += held
        elif name == "checkin":
            user, day = users[args[0]], date(2026, 1, 1) + timedelta(days=args[1])
            if not user.checkins.filter(day=day).exists():
                expected[user.pk] += Decimal("0.1")
            ledger.checkin(user_id=user.pk, day=day, amount=Decimal("0.1"))
        elif name == "redeem":
            user = users[args[0]]
            try:
                ledger.redeem(user_id=user.pk, code=code_values[args[1]])
                expected[user.pk] += Decimal("1.5")
            except ledger.CodeRefused as refusal:
                assert refusal.reason == "used"

    for user in users:
        assert ledger.balance_of(user.pk) == expected[user.pk] >= 0
    assert reconcile().problems == []
