"""Free balance: staff grants, the daily check-in, redemption codes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit

from ..models import AccountKind, CheckIn, RedemptionCode, Transaction, TransactionKind
from .accounts import platform_account, user_account
from .errors import CodeRefused, money
from .posting import retry_safe, transfer

# Staff's and operators' grants and adjustments are audited; the system's own credits (the welcome
# credit) are in the ledger only.
GRANT_ACTIONS = {TransactionKind.GRANT: "money.grant", TransactionKind.ADJUST: "money.adjust"}


def grant(
    *, user_id: int, amount: Decimal, memo: str, actor: str, kind: str = TransactionKind.ADJUST, idempotency_key=None
) -> Transaction:
    """Credit (or, with a negative amount, debit — never below zero) a user's balance."""
    amount = money(amount)
    if not amount:
        raise ValueError("a grant of zero changes nothing")
    source = platform_account(AccountKind.ADJUSTMENTS if kind == TransactionKind.ADJUST else AccountKind.PROMOTIONS)
    legs = [(source, -amount), (user_account(user_id), amount)]

    def operation() -> Transaction:
        if idempotency_key and (existing := Transaction.objects.filter(idempotency_key=idempotency_key).first()):
            return existing
        with transaction.atomic():
            txn = transfer(kind, legs, idempotency_key=idempotency_key, memo=memo, actor=actor)
            if kind in GRANT_ACTIONS and actor != "system":
                after = {"amount": amount, "memo": memo, "transaction": txn.pk}
                audit.record(GRANT_ACTIONS[kind], owner_id=user_id, target=f"user:{user_id}", after=after)
            return txn

    return retry_safe(operation, lambda: Transaction.objects.filter(idempotency_key=idempotency_key).first())


def checkin(*, user_id: int, day: date, amount: Decimal) -> CheckIn:
    """The daily reward: one per user per UTC day however often it is claimed."""
    amount = money(amount)

    def operation() -> CheckIn:
        existing = CheckIn.objects.filter(user_id=user_id, day=day).first()
        if existing is not None:
            return existing
        txn = transfer(
            TransactionKind.CHECKIN,
            [(platform_account(AccountKind.PROMOTIONS), -amount), (user_account(user_id), amount)],
            idempotency_key=f"checkin:{user_id}:{day.isoformat()}",
            memo=f"Daily check-in {day.isoformat()}",
        )
        return CheckIn.objects.create(user_id=user_id, day=day, amount=amount, transaction=txn)

    return retry_safe(operation, lambda: CheckIn.objects.filter(user_id=user_id, day=day).first())


def normalise_code(text: str) -> str:
    return "".join(text.split()).upper()


def redeem(*, user_id: int, code: str, now: datetime | None = None) -> RedemptionCode:
    """Redeem a code once: of two users racing for it, exactly one wins."""
    now = now or timezone.now()
    with transaction.atomic():
        found = RedemptionCode.objects.select_related("batch").filter(code=normalise_code(code)).first()
        if found is None:
            raise CodeRefused("unknown", _("That code does not exist. Check it for typos."))
        if found.redeemed_by_id is not None:
            raise CodeRefused("used", _("That code has already been used."))
        if found.batch.expires_at is not None and found.batch.expires_at <= now:
            raise CodeRefused(
                "expired", _("That code expired on %(day)s.") % {"day": f"{found.batch.expires_at:%Y-%m-%d}"}
            )
        claimed = RedemptionCode.objects.filter(pk=found.pk, redeemed_by__isnull=True).update(
            redeemed_by_id=user_id, redeemed_at=now
        )
        if not claimed:
            raise CodeRefused("used", _("That code has already been used."))
        txn = transfer(
            TransactionKind.REDEEM,
            [(platform_account(AccountKind.CODES), -found.batch.amount), (user_account(user_id), found.batch.amount)],
            idempotency_key=f"redeem:{found.pk}",
            memo=f"Code from batch {found.batch.label}"[:200],
        )
        RedemptionCode.objects.filter(pk=found.pk).update(transaction=txn)
        found.refresh_from_db()
        return found
