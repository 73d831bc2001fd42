"""Two-factor sign-in (accounts/two_factor.py): turning it on with a code from the app, the two-step log-in,
recovery codes, the lock-out, staff's admin and owners' payouts requiring it."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import keys, two_factor
from accounts.models import AuditEntry
from billing import ledger
from billing.models import Payout
from billing.pricing import Usage
from tests.conftest import PASSWORD, make_user, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_device_delay(settings, request):
    """django-otp makes a device wait 2^n seconds after n wrong codes; the tests of TokenHub's own steps
    turn that off, the lock-out test keeps it."""
    if "device_delay" not in request.keywords:
        settings.OTP_TOTP_THROTTLE_FACTOR = 0
        settings.OTP_STATIC_THROTTLE_FACTOR = 0


def code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """What the authenticator app shows (a later step: a second code within one 30 s step, as the
    device refuses a code used once)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def log_in(username: str, next_url: str = "") -> tuple[Client, object]:
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": username, "password": PASSWORD, "next": next_url})
    return client, response


def enrolled(user) -> tuple[TOTPDevice, list[str]]:
    device = two_factor.begin(user)
    return device, two_factor.confirm(user, code(device))


def test_turning_it_on_takes_a_code_from_the_app_and_shows_recovery_codes_once(alice):
    client = Client()
    client.force_login(alice)
    assert "Set up two-factor sign-in" in client.get(reverse("accounts:settings")).content.decode()
    client.post(reverse("accounts:two_factor_start"), {"password": "not the password"})
    assert two_factor.pending(alice) is None  # a session alone does not tie the account to a phone
    client.post(reverse("accounts:two_factor_start"), {"password": PASSWORD})
    page = client.get(reverse("accounts:settings")).content.decode()
    assert "<svg" in page and 'data-testid="totp-secret"' in page  # the QR code, drawn in the page
    device = two_factor.pending(alice)
    wrong = client.post(reverse("accounts:two_factor_confirm"), {"code": "000000"})
    assert wrong.status_code == 400 and "not right" in wrong.content.decode()
    assert not two_factor.is_enabled(alice)
    done = client.post(reverse("accounts:two_factor_confirm"), {"code": code(device)})
    shown = re.search(r'data-testid="recovery-codes">(.*?)</code>', done.content.decode(), re.S).group(1).split()
    assert done.status_code == 200 and len(shown) == 10 and two_factor.is_enabled(alice)
    assert not any(c in client.get(reverse("accounts:settings")).content.decode() for c in shown)  # once
    entry = AuditEntry.objects.get(action="security.2fa_enabled")
    assert (entry.owner, entry.actor, entry.via, entry.ip) == (alice, alice, "web", "127.0.0.1")


def test_log_in_asks_for_the_code_after_the_password_and_nobody_is_signed_in_before_it(alice):
    device, _codes = enrolled(alice)
    client, response = log_in("alice", next_url=reverse("billing:usage"))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login_verify")
    assert not signed_in(client)
    assert client.get(reverse("billing:dashboard")).status_code == 302  # still a visitor
    wrong = client.post(reverse("accounts:login_verify"), {"code": "123456"})
    assert wrong.status_code == 400 and not signed_in(client)
    shown = code(device, 1)  # (the current code confirmed the device)
    right = client.post(reverse("accounts:login_verify"), {"code": shown})
    assert right.status_code == 302 and right["Location"] == reverse("billing:usage") and signed_in(client)
    # The same code a second time (a shoulder-surfer's replay) does not sign anyone in.
    again, _ = log_in("alice")
    assert again.post(reverse("accounts:login_verify"), {"code": shown}).status_code == 400


def test_a_recovery_code_signs_in_once(alice):
    _device, codes = enrolled(alice)
    client, _ = log_in("alice")
    used = client.post(reverse("accounts:login_verify"), {"code": codes[0].upper()})
    assert used.status_code == 302 and used["Location"] == reverse("accounts:settings") and signed_in(client)
    assert two_factor.recovery_codes_left(alice) == 9
    second, _ = log_in("alice")
    assert second.post(reverse("accounts:login_verify"), {"code": codes[0]}).status_code == 400


@pytest.mark.device_delay
def test_wrong_codes_lock_the_second_step_like_wrong_passwords(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    device, _codes = enrolled(alice)
    client, _ = log_in("alice")
    client.post(reverse("accounts:login_verify"), {"code": "000000"})
    # Right after a wrong code, the device itself refuses even the right one for a while (django-otp).
    assert client.post(reverse("accounts:login_verify"), {"code": code(device)}).status_code == 400
    for guess in ("111111",):
        client.post(reverse("accounts:login_verify"), {"code": guess})
    locked = client.post(reverse("accounts:login_verify"), {"code": code(device, 1)})
    assert "Too many failed attempts" in locked.content.decode() and not signed_in(client)
    # ...and the password step too, for the same user and address.
    _other, response = log_in("alice")
    assert "Too many failed log-in attempts" in response.content.decode()


def test_the_second_step_expires(alice):
    enrolled(alice)
    client, _ = log_in("alice")
    session = client.session
    session["two_factor_pending"]["at"] -= 301
    session.save()
    response = client.post(reverse("accounts:login_verify"), {"code": "000000"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")


def test_turning_it_off_and_new_recovery_codes_need_a_current_code(alice):
    device, old_codes = enrolled(alice)
    client = Client()
    client.force_login(alice)
    assert client.post(reverse("accounts:two_factor_disable"), {"code": "000000"}).status_code == 400
    assert two_factor.is_enabled(alice)
    renewed = client.post(reverse("accounts:two_factor_recovery"), {"code": code(device, 1)})
    fresh = re.search(r'data-testid="recovery-codes">(.*?)</code>', renewed.content.decode(), re.S).group(1).split()
    assert len(fresh) == 10 and not set(fresh) & set(old_codes)
    assert two_factor.verify(alice, old_codes[1]) is None  # the old ones stopped working
    assert client.post(reverse("accounts:two_factor_disable"), {"code": fresh[0]}).status_code == 302
    assert not two_factor.is_enabled(alice) and two_factor.recovery_codes_left(alice) == 0
    actions = list(AuditEntry.objects.filter(owner=alice).values_list("action", flat=True))
    assert actions == ["security.2fa_disabled", "security.recovery_codes", "security.2fa_enabled"]


def test_staff_without_two_factor_cannot_open_the_admin_and_are_sent_to_turn_it_on():
    staff = make_user("operator", is_staff=True, is_superuser=True, two_factor=False)
    client, earlier = Client(), Client()
    client.force_login(staff)
    earlier.force_login(staff)  # another session, signed in with the password alone (a thief's, say)
    first = client.get("/admin/")
    assert first.status_code == 302 and first["Location"].startswith("/admin/login/")
    sent = client.get(first["Location"])
    assert sent.status_code == 302 and sent["Location"] == reverse("accounts:settings")
    client.post(reverse("accounts:two_factor_start"), {"password": PASSWORD})
    client.post(reverse("accounts:two_factor_confirm"), {"code": code(two_factor.pending(staff))})
    assert client.get("/admin/").status_code == 200  # this session showed the code
    assert earlier.get("/admin/").status_code == 302 and not signed_in(earlier)  # turning it on ended that one


def test_a_password_only_session_from_before_is_sent_to_sign_in_again_for_the_admin():
    staff = make_user("operator", is_staff=True, is_superuser=True)  # two-factor on
    client = Client()
    client.force_login(staff)  # no code shown in this session
    gate = client.get(client.get("/admin/")["Location"])
    assert gate.status_code == 302 and gate["Location"].startswith(reverse("accounts:login"))
    assert not signed_in(client)


def test_the_admin_signs_in_through_the_sites_two_step_log_in(alice):
    response = Client().get("/admin/login/?next=/admin/billing/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2Fadmin%2Fbilling%2F"
    signed_in_caller = Client()
    signed_in_caller.force_login(alice)  # not staff: refused, not sent round in a loop
    assert signed_in_caller.get("/admin/login/?next=/admin/").status_code == 403


def test_payouts_need_two_factor_and_a_verified_address(bob, alice):
    dave = make_user("dave", verified_email="")
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="seed", actor="test")
    for n, owner in enumerate((dave, bob)):
        ledger.hold(user_id=alice.pk, amount=Decimal("4"), request_id=f"call{n}")
        ledger.settle(
            request_id=f"call{n}", cost=Decimal("4"), usage=Usage(), owner_id=owner.pk, owner_cut=Decimal("0.5")
        )
    page = Client()
    page.force_login(dave)
    refused = page.post(reverse("billing:request_payout"), {"amount": "1", "destination": "IBAN DE00"})
    assert refused.status_code == 400 and "Turn on two-factor sign-in" in refused.content.decode()
    enrolled(dave)
    refused = page.post(reverse("billing:request_payout"), {"amount": "1", "destination": "IBAN DE00"})
    assert "signed in with the password alone" in refused.content.decode()  # this session showed no code
    sign_in(page, dave)
    refused = page.post(reverse("billing:request_payout"), {"amount": "1", "destination": "IBAN DE00"})
    assert "Verify your e-mail address" in refused.content.decode()
    _key, manage = keys.create_key(dave, "tool", scope="manage")
    api = Client().post(
        "/api/payouts",
        {"amount_usd": "1", "destination": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {manage}",
    )
    assert api.status_code == 403 and "not requested with an API key" in api.json()["error"]["message"]
    assert not Payout.objects.filter(owner=dave).exists()
    ok = Client()
    sign_in(ok, bob)  # bob: two-factor on and shown in this session, address verified
    assert ok.post(reverse("billing:request_payout"), {"amount": "1", "destination": "IBAN DE01"}).status_code == 302
    assert Payout.objects.get(owner=bob).amount == Decimal("1")


def test_an_operator_resets_a_lost_second_factor_and_it_is_audited(alice):
    from io import StringIO

    from django.core.management import CommandError, call_command

    enrolled(alice)
    out = StringIO()
    call_command("reset_two_factor", "alice", stdout=out)
    assert "is off" in out.getvalue() and not two_factor.is_enabled(alice)
    assert two_factor.recovery_codes_left(alice) == 0
    entry = AuditEntry.objects.get(action="security.2fa_reset")
    assert entry.via == "cli" and entry.owner == alice
    with pytest.raises(CommandError, match="no two-factor sign-in"):
        call_command("reset_two_factor", "alice")
    client, response = log_in("alice")  # the password alone now
    assert response.status_code == 302 and signed_in(client)


def test_staff_reset_a_lost_second_factor_from_the_admin(alice, admin_user):
    enrolled(alice)
    staff = Client()
    sign_in(staff, admin_user)
    staff.post(
        reverse("admin:accounts_user_changelist"), {"action": "reset_two_factor", "_selected_action": [alice.pk]}
    )
    assert not two_factor.is_enabled(alice)
    entry = AuditEntry.objects.get(action="security.2fa_reset")
    assert (entry.via, entry.actor, entry.owner) == ("admin", admin_user, alice)


def test_a_recovery_code_works_without_its_dash_and_wrong_codes_in_the_settings_count_toward_the_lock_out(
    alice, settings
):
    settings.LOGIN_FAILURE_LIMIT = 2
    _device, codes = enrolled(alice)
    client = Client()
    client.force_login(alice)
    for guess in ("000000", "111111"):  # guessing at the settings page (a stolen session) is counted too
        client.post(reverse("accounts:two_factor_disable"), {"code": guess})
    locked = client.post(reverse("accounts:two_factor_disable"), {"code": codes[1]})
    assert "Too many wrong codes" in locked.content.decode() and two_factor.is_enabled(alice)
    assert two_factor.verify(alice, codes[0].replace("-", "")) == "recovery"  # typed without the dash
    assert two_factor.recovery_codes_left(alice) == 9
