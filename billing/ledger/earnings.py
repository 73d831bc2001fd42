"""Owners' earnings: moved to their own balance, or paid out after staff decide."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from accounts import audit, notifications, two_factor, verification
from accounts.models import User

from ..models import Account, AccountKind, Payout, PayoutStatus, Transaction, TransactionKind
from ..pricing import usd
from .accounts import derived_balance, owner_account, payout_account, platform_account, user_account
from .errors import LedgerError, money
from .posting import transfer


class PayoutNotAllowed(LedgerError):
    """The owner's account is not ready for payouts (two-factor sign-in, a verified address)."""


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
            raise LedgerError(
                _("You can move between $0 and %(available)s of earnings.") % {"available": usd(available)}
            )
        txn = transfer(
            TransactionKind.EARNINGS_TO_BALANCE,
            [(earnings, -amount), (user_account(owner_id), amount)],
            memo="Earnings moved to balance",
            actor=f"user:{owner_id}",
        )
        after = {"amount": amount, "transaction": txn.pk}
        audit.record("money.earnings_moved", owner_id=owner_id, target=f"user:{owner_id}", after=after)
        return txn


NOT_WITH_A_KEY = gettext_lazy(
    "Payouts are not requested with an API key: sign in to the site with your two-factor code and request it "
    "on the earnings page (or through this API with that session)."
)
SIGN_IN_AGAIN = gettext_lazy(
    "This session was signed in with the password alone: log out and in again with your two-factor code "
    "to request a payout."
)


def payout_refusal(owner, request=None) -> str | None:
    """Why this owner may not request a payout yet: money leaves TokenHub, so the account must be the
    owner's beyond a password (two-factor sign-in, on this very session when there is a request: a leaked
    API key or a password-only session must not redirect earnings) and reachable (a verified address)."""
    if not two_factor.is_enabled(owner):
        return _("Turn on two-factor sign-in (on your settings page) before requesting a payout.")
    if request is not None and getattr(request, "key_scope", None):
        return str(NOT_WITH_A_KEY)
    if request is not None and not two_factor.session_verified(request):
        return str(SIGN_IN_AGAIN)
    return verification.refusal(owner, "payout")


def request_payout(*, owner_id: int, amount: Decimal, destination: str, request=None) -> Payout:
    """`request`: the web or API request asking, whose session must have passed the second factor."""
    amount = money(amount)
    refusal = payout_refusal(User.objects.get(pk=owner_id), request)
    if refusal:
        raise PayoutNotAllowed(refusal)
    with transaction.atomic():
        earnings, available = _locked_earnings(owner_id)
        if amount <= 0 or amount > available:
            raise LedgerError(
                _("A payout must be more than $0 and at most your available earnings, %(available)s.")
                % {"available": usd(available)}
            )
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
        after = {"amount": amount, "destination": destination, "status": payout.status}
        audit.record("payout.requested", owner_id=owner_id, target=f"payout:{payout.public_id}", after=after)
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
        audit.record(
            f"payout.{status}",
            owner_id=payout.owner_id,
            target=f"payout:{payout.public_id}",
            before={"status": PayoutStatus.PENDING},
            after={"status": status, "amount": payout.amount},
        )
        _tell_owner(payout, paid)
        return True


def _tell_owner(payout: Payout, paid: bool) -> None:
    params = {"amount": usd(payout.amount), "id": payout.public_id, "destination": payout.destination}
    if paid:
        subject = gettext_noop("Your payout of %(amount)s was approved")
        body = gettext_noop("Payout %(id)s of %(amount)s to %(destination)s was approved and paid.")
    else:
        subject = gettext_noop("Your payout of %(amount)s was rejected")
        body = gettext_noop(
            "Payout %(id)s of %(amount)s was rejected; the amount is back in your available earnings. Ask "
            "TokenHub's staff why if it is not clear."
        )
    notifications.send(payout.owner_id, "payout", f"payout:{payout.public_id}", subject, body, params)
