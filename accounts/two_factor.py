"""Two-factor sign-in: a TOTP authenticator (django-otp) and single-use recovery codes.

Sign-in is two steps when a user has a confirmed authenticator: the password first, then a code
(`accounts.views.verify_sign_in`); until the code is right nobody is logged in. Turning it on shows a
QR code, and only a correct code from the app confirms it (a half-done enrolment protects nothing and
is replaced by the next). Recovery codes are made at confirmation, shown once, and each works once.

Required for staff (the admin refuses staff without it, tokenhub/admin.py) and for owners before they
can request a payout (billing.ledger refuses it through `require_for_payouts`).
"""

from __future__ import annotations

import secrets

import segno
from django.db import models, transaction
from django.utils.translation import gettext as _
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import audit

RECOVERY_CODES = 10
DEVICE_NAME = "authenticator"
RECOVERY_NAME = "recovery codes"


VERIFIED_SESSION = "two_factor_verified"  # this session passed the second factor (or set it up)


def session_verified(request) -> bool:
    """Did this session sign in with the second factor (or turn it on)? A session signed in with the
    password alone before two-factor sign-in was turned on does not count."""
    return bool(request.session.get(VERIFIED_SESSION)) and is_enabled(request.user)


def mark_session_verified(request) -> None:
    request.session[VERIFIED_SESSION] = True


def end_other_sessions(request, user) -> None:
    """Turning two-factor sign-in on or off signs every other session of the user out (they were made
    under the old rule): the session hash changes, this session gets the new one."""
    from django.contrib.auth import update_session_auth_hash

    from .models import User

    User.objects.filter(pk=user.pk).update(security_stamp=models.F("security_stamp") + 1)
    user.refresh_from_db(fields=["security_stamp"])
    update_session_auth_hash(request, user)


class TwoFactorError(Exception):
    """A code that is wrong, expired or used; the message says which to try."""


def authenticator(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def is_enabled(user) -> bool:
    return bool(user.pk) and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def begin(user) -> TOTPDevice:
    """A new, unconfirmed authenticator (any earlier unconfirmed one is dropped)."""
    if is_enabled(user):
        raise TwoFactorError(_("Two-factor sign-in is already on."))
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def pending(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).first()


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL as an inline SVG QR code (no image is fetched from anywhere)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#111", light="#fff")


def secret_text(device: TOTPDevice) -> str:
    """The shared secret in base32, for apps that cannot scan (shown only during enrolment)."""
    from base64 import b32encode

    return b32encode(device.bin_key).decode().rstrip("=")


def confirm(user, token: str) -> list[str]:
    """Confirm the pending authenticator with a code from it; returns the new recovery codes."""
    device = pending(user)
    if device is None:
        raise TwoFactorError(_("Start again: there is no authenticator waiting to be confirmed."))
    if not device.verify_token(_digits(token)):
        raise TwoFactorError(_("That code is not right. Check the time on your phone and try the newest code."))
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _new_recovery_codes(user)
        audit.record("security.2fa_enabled", owner_id=user.pk, target=f"user:{user.pk}")
    return codes


def new_recovery_codes(user, token: str) -> list[str]:
    """Replace the recovery codes (the old ones stop working); needs a current code."""
    if not verify(user, token):
        raise TwoFactorError(_("That code is not right."))
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        audit.record("security.recovery_codes", owner_id=user.pk, target=f"user:{user.pk}")
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__name=RECOVERY_NAME).count()


def _new_recovery_codes(user) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_NAME, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def _recovery_code() -> str:
    digits = secrets.token_hex(5)  # 40 bits, single-use, behind the log-in throttle: "3f9a1-c07e2"
    return f"{digits[:5]}-{digits[5:]}"


def verify(user, token: str) -> str | None:
    """Check a code from the authenticator or a recovery code; returns which ("totp", "recovery") or None.

    django-otp throttles each device (growing delays after failures) and refuses a TOTP code used once."""
    token = (token or "").strip().lower()
    device = authenticator(user)
    if device is None or not token:
        return None
    compact = token.replace(" ", "").replace("-", "")
    if compact.isdigit() and len(compact) == device.digits:
        return "totp" if device.verify_token(compact) else None
    if len(compact) == 10:  # a recovery code, typed with or without its dash
        code = f"{compact[:5]}-{compact[5:]}"
        for recovery in StaticDevice.objects.filter(user=user, name=RECOVERY_NAME):
            if recovery.verify_token(code):  # a used recovery code is deleted: it works once
                return "recovery"
    return None


def disable(user, token: str) -> None:
    if not verify(user, token):
        raise TwoFactorError(_("That code is not right: two-factor sign-in stays on."))
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        audit.record("security.2fa_disabled", owner_id=user.pk, target=f"user:{user.pk}")


def _digits(token: str) -> str:
    return "".join(ch for ch in (token or "") if ch.isdigit())
