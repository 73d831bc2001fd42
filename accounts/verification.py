"""E-mail verification: a signed link proves the user reads the address on their account.

Check-in rewards and payouts wait for it (free balance for throwaway addresses, and money sent to an
owner nobody can reach, are what it prevents). The link carries the user and the address, signed
with SECRET_KEY; it works for three days and only while the account still has that address.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import audit, throttle
from .models import User

SALT = "accounts.email-verification"
MAX_AGE_SECONDS = 3 * 24 * 3600


TAKEN = gettext_lazy("This address already verifies another account: each address verifies one account only.")


class VerificationError(Exception):
    pass


def token_for(user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=SALT, compress=True)


def verify(token: str) -> User:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise VerificationError(_("This link has expired: send yourself a new one from your account page.")) from None
    except signing.BadSignature:
        raise VerificationError(_("This link is not valid. Send yourself a new one from your account page.")) from None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or not user.email or user.email.lower() != data.get("e"):
        raise VerificationError(_("This link is for an address your account no longer uses."))
    if not user.email_verified:
        if User.objects.filter(verified_email__iexact=user.email).exclude(pk=user.pk).exists():
            raise VerificationError(TAKEN)
        try:
            with transaction.atomic():
                User.objects.filter(pk=user.pk).update(verified_email=user.email)
                user.verified_email = user.email
                after = {"email": user.email}
                audit.record("security.email_verified", owner_id=user.pk, target=f"user:{user.pk}", after=after)
        except IntegrityError:  # another account verified the same address at the same moment
            raise VerificationError(TAKEN) from None
    return user


def may_send(user: User) -> int | None:
    """None if a link may be sent now, else the seconds to wait (a few per hour per user)."""
    return throttle.retry_after("email-verification", str(user.pk), settings.EMAIL_VERIFICATION_RATE_LIMIT)


PURPOSES = {"checkin": gettext_lazy("earn check-in rewards"), "payout": gettext_lazy("request a payout")}


def refusal(user: User, purpose: str) -> str | None:
    """Why `purpose` (PURPOSES) waits for a verified address, or None."""
    if user.email_verified:
        return None
    what = PURPOSES[purpose]
    if not user.email:
        return _("Add an e-mail address to your account and verify it to %(what)s.") % {"what": what}
    message = _("Verify your e-mail address (%(email)s) to %(what)s: the link is on your account page.")
    return message % {"email": user.email, "what": what}
