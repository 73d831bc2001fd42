"""The ledger's accounts: found by code (`user:N`, `hold:N`, `owner:N`, `payout:N`, `platform:<kind>`),
created on first use, and their balances."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import Coalesce

from ..models import CACHED_KINDS, ZERO, Account, AccountKind, Entry
from ..pricing import quantize
from . import statements


def account(code: str, kind: str, user_id: int | None = None) -> Account:
    balance = ZERO if kind in CACHED_KINDS else None
    found, _created = Account.objects.get_or_create(
        code=code, defaults={"kind": kind, "user_id": user_id, "balance": balance}
    )
    return found


def accounts(*specs: tuple[str, str, int | None]) -> list[Account]:
    """Several accounts in one query (creating any that do not exist yet): (code, kind, user id) each."""
    found = {a.code: a for a in Account.objects.filter(code__in=[code for code, _kind, _user in specs])}
    return [found.get(code) or account(code, kind, user_id) for code, kind, user_id in specs]


def user_spec(user_id: int) -> tuple[str, str, int]:
    return f"user:{user_id}", AccountKind.USER, user_id


def hold_spec(user_id: int) -> tuple[str, str, int]:
    return f"hold:{user_id}", AccountKind.HOLD, user_id


def platform_account(kind: str) -> Account:
    return account(f"platform:{kind}", kind)


def user_account(user_id: int) -> Account:
    return account(*user_spec(user_id))


def owner_account(user_id: int) -> Account:
    return account(f"owner:{user_id}", AccountKind.OWNER, user_id)


def payout_account(user_id: int) -> Account:
    return account(f"payout:{user_id}", AccountKind.PAYOUT, user_id)


def move_cached(spec: tuple[str, str, int], amount: Decimal, *, require_funds: bool = False) -> int | None:
    """Move a cached balance by code, creating the user's accounts on first use; its id, or None."""
    code = spec[0]
    account_id = statements.move(code, amount, require_funds=require_funds)
    if account_id is None and not Account.objects.filter(code=code).exists():
        accounts(spec)
        account_id = statements.move(code, amount, require_funds=require_funds)
    return account_id


def derived_balance(of: Account) -> Decimal:
    # quantize: SQLite sums decimals as floats.
    return quantize(Entry.objects.filter(account=of).aggregate(total=Coalesce(Sum("amount"), ZERO))["total"])


def balance_of(user_id: int) -> Decimal:
    """The user's spendable balance (holds in flight excluded)."""
    found = Account.objects.filter(code=f"user:{user_id}").only("balance").first()
    return found.balance if found else ZERO


def earnings_of(user_id: int) -> Decimal:
    """A channel owner's earnings not yet moved to their balance or paid out."""
    found = Account.objects.filter(code=f"owner:{user_id}").first()
    return derived_balance(found) if found else ZERO
