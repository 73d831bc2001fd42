"""E-mail verification: a signed link proves the user reads the address on their account.

Check-in rewards and payouts wait for it (free balance for throwaway addresses, and money sent to an
owner nobody can reach, are what it prevents). The link carries the user and the address, signed
with SECRET_KEY; it works for three days and only while the account still has that address.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction

from . import audit, throttle
from .models import User

SALT = "accounts.email-verification"
MAX_AGE_SECONDS = 3 * 24 * 3600


TAKEN = "This address already verifies another account: each address verifies one account only."


class VerificationError(Exception):
    pass


def token_for(user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=SALT, compress=True)


def verify(token: str) -> User:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise VerificationError("This link has expired: send yourself a new one from your account page.") from None
    except signing.BadSignature:
        raise VerificationError("This link is not valid. Send yourself a new one from your account page.") from None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or not user.email or user.email.lower() != data.get("e"):
        raise VerificationError("This link is for an address your account no longer uses.")
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


def refusal(user: User, what: str) -> str | None:
    """Why `what` waits for a verified address, or None."""
    if user.email_verified:
        return None
    if not user.email:
        return f"Add an e-mail address to your account and verify it to {what}."
    return f"Verify your e-mail address ({user.email}) to {what}: the link is on your account page."
