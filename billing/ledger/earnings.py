"""Owners' earnings: moved to their own balance, or paid out after staff decide."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from ..models import Account, AccountKind, Payout, PayoutStatus, Transaction, TransactionKind
from ..pricing import usd
from .accounts import derived_balance, owner_account, payout_account, platform_account, user_account
from .errors import LedgerError, money
from .posting import transfer


def _locked_earnings(owner_id: int) -> tuple[Account, Decimal]:
    """Lock the owner's earnings account row (the serialisation point), then sum its entries."""
    account = owner_account(owner_id)
    Account.objects.select_for_update().filter(pk=account.pk).first()
    return account, derived_balance(account)


def move_earnings_to_balance(*, owner_id: int, amount: Decimal | None = None) -> Transaction:
    with transaction.atomic():
        earnings, available = _locked_earnings(owner_id)
        amount = available if amount is None else money(amount)
        if amount <= 0 or amount > available:
            raise LedgerError(f"You can move between $0 and {usd(available)} of earnings.")
        return transfer(
            TransactionKind.EARNINGS_TO_BALANCE,
            [(earnings, -amount), (user_account(owner_id), amount)],
            memo="Earnings moved to balance",
            actor=f"user:{owner_id}",
        )


def request_payout(*, owner_id: int, amount: Decimal, destination: str) -> Payout:
    amount = money(amount)
    with transaction.atomic():
        earnings, available = _locked_earnings(owner_id)
        if amount <= 0 or amount > available:
            raise LedgerError(f"A payout must be more than $0 and at most your available earnings, {usd(available)}.")
        payout = Payout.objects.create(
            owner_id=owner_id, public_id=secrets.token_urlsafe(9), amount=amount, destination=destination
        )
        transfer(
            TransactionKind.PAYOUT_REQUEST,
            [(earnings, -amount), (payout_account(owner_id), amount)],
            idempotency_key=f"payout-request:{payout.public_id}",
            memo=f"Payout {payout.public_id} requested",
            actor=f"user:{owner_id}",
        )
        return payout


def decide_payout(*, payout_id: int, paid: bool, actor: str) -> bool:
    """Mark a pending payout paid or rejected (a rejection returns the money to earnings). Idempotent."""
    status = PayoutStatus.PAID if paid else PayoutStatus.REJECTED
    with transaction.atomic():
        changed = Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            status=status, decided_at=timezone.now(), decided_by=actor[:120]
        )
        if not changed:
            return False
        payout = Payout.objects.get(pk=payout_id)
        target = platform_account(AccountKind.PAID_OUT) if paid else owner_account(payout.owner_id)
        transfer(
            TransactionKind.PAYOUT_PAID if paid else TransactionKind.PAYOUT_REJECTED,
            [(payout_account(payout.owner_id), -payout.amount), (target, payout.amount)],
            idempotency_key=f"payout-{status}:{payout.public_id}",
            memo=f"Payout {payout.public_id} {status}",
            actor=actor,
        )
        return True
