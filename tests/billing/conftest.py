from __future__ import annotations

from decimal import Decimal

import pytest

from billing import ledger
from billing.models import TransactionKind
from billing.reconcile import reconcile


def fund(user, amount: str) -> None:
    ledger.grant(user_id=user.pk, amount=Decimal(amount), memo="test funding", actor="test", kind=TransactionKind.GRANT)


@pytest.fixture
def assert_ledger_whole():
    def check():
        report = reconcile()
        assert report.problems == []

    return check
