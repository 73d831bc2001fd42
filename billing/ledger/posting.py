"""Posting: the one place this package writes a transaction and its entries (the batched statements
aside, which do the same in SQL and which PostgreSQL checks the same way).

Every transaction's entries sum to zero: `post` refuses otherwise, and on PostgreSQL a trigger on
the entries (billing migration 0008) refuses any INSERT that breaks it, whoever writes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..models import CACHED_KINDS, ZERO, Account, Transaction
from .errors import InsufficientBalance, money
from .statements import ENTRY, TRANSACTION, move, run


def post(
    kind: str,
    legs: list[tuple[int, Decimal]],
    *,
    idempotency_key: str | None,
    memo: str = "",
    actor: str = "system",
    at: datetime | None = None,
) -> int:
    """The transaction row and its entries, in one INSERT each; legs are (account id, amount), zeros left out.

    Cached balances are the caller's to move (`transfer` does it); this writes the record of it.
    """
    if sum((amount for _id, amount in legs), ZERO) != 0:
        raise ValueError(f"unbalanced {kind} transaction: {legs}")
    created_at = connection.ops.adapt_datetimefield_value(at or timezone.now())
    txn_id = run(
        f"INSERT INTO {TRANSACTION} (kind, idempotency_key, memo, actor, created_at) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        [kind, idempotency_key, memo[:200], actor[:120], created_at],
    )[0][0]
    entries = [(account_id, amount) for account_id, amount in legs if amount]
    if entries:
        values = ", ".join(["(%s, %s, %s)"] * len(entries))
        params = [value for account_id, amount in entries for value in (txn_id, account_id, amount)]
        run(f"INSERT INTO {ENTRY} (transaction_id, account_id, amount) VALUES {values}", params)  # noqa: S608
    return txn_id


def transfer(
    kind: str,
    legs: list[tuple[Account, Decimal]],
    *,
    idempotency_key: str | None = None,
    memo: str = "",
    actor: str = "system",
) -> Transaction:
    """Post a balanced transaction between accounts and move their cached balances. Call inside `atomic()`.

    Cached balances change in primary-key order (no deadlocks); a debit is `UPDATE … WHERE balance >=
    amount` and must match one row, so concurrent debits never overdraw.
    """
    totals: dict[int, Decimal] = defaultdict(Decimal)
    by_id: dict[int, Account] = {}
    for account, amount in legs:
        totals[account.pk] += money(amount)
        by_id[account.pk] = account
    at = timezone.now()
    txn_id = post(kind, sorted(totals.items()), idempotency_key=idempotency_key, memo=memo, actor=actor, at=at)
    for pk in sorted(totals):
        amount = totals[pk]
        if not amount or by_id[pk].kind not in CACHED_KINDS:
            continue
        if move(by_id[pk].code, amount, require_funds=amount < 0) is None:
            raise InsufficientBalance(need=-amount, have=Account.objects.get(pk=pk).balance)
    return Transaction(
        id=txn_id, kind=kind, idempotency_key=idempotency_key, memo=memo[:200], actor=actor[:120], created_at=at
    )


def retry_safe(operation, find_existing):
    """Run `operation` atomically; if a concurrent twin won the unique key, return what it made."""
    try:
        with transaction.atomic():
            return operation()
    except IntegrityError:
        existing = find_existing()
        if existing is None:
            raise
        return existing
