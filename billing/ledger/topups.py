"""Bought credit: a paid order's credit, and the credit a refund or chargeback takes back.

Money comes from the platform account `payments` (it goes negative as it pays out credit, like the
promotions account) to `user:<id>`. The order (billing/payments/orders.py) is locked by the caller;
these only post. A take-back never drives the spendable balance below zero: what was already spent
is left owing on the order (`unrecovered_usd`) and collected from the account's next top-up.
"""

from __future__ import annotations

from decimal import Decimal

from ..models import ZERO, Account, AccountKind, Transaction, TransactionKind
from .accounts import platform_account, user_account
from .errors import money
from .posting import transfer


def credit_key(order_code: str) -> str:
    """The idempotency key of an order's one credit (`reconcile` looks for exactly one per paid order)."""
    return f"topup:{order_code}"


def credit(*, order_code: str, user_id: int, amount: Decimal, memo: str) -> Transaction:
    """A paid order's credit. Call inside `atomic()`, the order locked; the unique key refuses a second one."""
    amount = money(amount)
    return transfer(
        TransactionKind.TOPUP,
        [(platform_account(AccountKind.PAYMENTS), -amount), (user_account(user_id), amount)],
        idempotency_key=credit_key(order_code),
        memo=memo,
    )


def take_back(*, user_id: int, amount: Decimal, idempotency_key: str, memo: str) -> Decimal:
    """Debit up to `amount` of a user's spendable balance back to `payments`; returns what it took.

    Call inside `atomic()`: the user's account row is locked so the balance read is the balance debited
    (a relay hold in flight waits for this transaction, or this one waits for it)."""
    amount = money(amount)
    account = user_account(user_id)
    balance = Account.objects.select_for_update().values_list("balance", flat=True).get(pk=account.pk) or ZERO
    taken = min(amount, max(balance, ZERO))
    if taken > 0:
        transfer(
            TransactionKind.TOPUP_REVERSAL,
            [(account, -taken), (platform_account(AccountKind.PAYMENTS), taken)],
            idempotency_key=idempotency_key,
            memo=memo,
        )
    return taken
