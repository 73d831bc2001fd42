"""E-mail verification (accounts/verification.py): the link a new user gets by mail (Celery, a real SMTP
server) verifies their address; a changed address is unverified again and needs the password; check-in
rewards wait for a verified address, in the site, the JSON API and the task itself."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import keys, verification
from accounts.models import AuditEntry, User
from billing.models import CheckIn
from billing.tasks import grant_checkin
from tests.conftest import PASSWORD, make_user
from tests.mail import body_of

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/email/verify/\S+/)", body_of(message)).group(1)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_new_user_gets_a_link_by_mail_and_following_it_verifies_the_address(inbox):
    client = Client()
    form = {"username": "erin", "email": "erin@example.test", "password1": PASSWORD, "password2": PASSWORD}
    assert client.post(reverse("accounts:signup"), form).status_code == 302
    erin = User.objects.get(username="erin")
    assert not erin.email_verified
    [message] = inbox.wait_for(1, "erin@example.test")
    assert message["Subject"] == "Verify your e-mail address for TokenHub"
    page = Client().get(link_in(message))  # from any browser: the signed link is the proof
    assert page.status_code == 200 and "erin@example.test is verified" in page.content.decode()
    erin.refresh_from_db()
    assert erin.email_verified and AuditEntry.objects.filter(owner=erin, action="security.email_verified").exists()


def test_a_changed_address_needs_the_password_and_is_unverified_again(alice):
    client = Client()
    client.force_login(alice)
    change = {"email": "new@example.test", "low_balance_alert_usd": ""}
    refused = client.post(reverse("accounts:settings"), change)
    assert refused.status_code == 400 and "current password" in refused.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.test" and alice.email_verified
    old_link = verification.token_for(alice)
    assert client.post(reverse("accounts:settings"), {**change, "current_password": PASSWORD}).status_code == 302
    alice.refresh_from_db()
    assert alice.email == "new@example.test" and not alice.email_verified
    stale = Client().get(reverse("accounts:verify_email", args=[old_link]))
    assert stale.status_code == 400 and "no longer uses" in stale.content.decode()
    assert AuditEntry.objects.get(action="account.email_changed").after == {"email": "new@example.test"}


def test_forged_and_expired_links_change_nothing(alice, settings):
    alice_unverified = make_user("frank", verified_email="")
    forged = signing.dumps({"u": alice_unverified.pk, "e": alice_unverified.email}, salt="someone-else")
    assert Client().get(reverse("accounts:verify_email", args=[forged])).status_code == 400
    token = verification.token_for(alice_unverified)
    with pytest.raises(verification.VerificationError, match="expired"):
        signing_loads_later(token)
    alice_unverified.refresh_from_db()
    assert not alice_unverified.email_verified


def signing_loads_later(token: str) -> None:
    import time
    from unittest import mock

    later = time.time() + verification.MAX_AGE_SECONDS + 60
    with mock.patch("django.core.signing.time.time", return_value=later):
        verification.verify(token)


def test_check_in_rewards_wait_for_a_verified_address(settings):
    ivan = make_user("ivan", verified_email="")
    page = Client()
    page.force_login(ivan)
    wallet = page.get(reverse("billing:wallet")).content.decode()
    assert "verify your e-mail address" in wallet and "Check in for" not in wallet
    _key, manage = keys.create_key(ivan, "tool", scope="manage")
    api = Client().post("/api/checkin", HTTP_AUTHORIZATION=f"Bearer {manage}")
    assert api.status_code == 403 and "Verify your e-mail address" in api.json()["error"]["message"]
    # A task queued before (or around) the rule grants nothing either.
    assert grant_checkin(ivan.pk, timezone.now().date().isoformat()) == "unverified"
    assert not CheckIn.objects.filter(user=ivan).exists()


def test_sending_a_link_is_rate_limited(settings):
    settings.EMAIL_VERIFICATION_RATE_LIMIT = 1
    judy = make_user("judy", verified_email="")
    page = Client()
    page.force_login(judy)
    page.post(reverse("accounts:send_verification"))
    second = page.post(reverse("accounts:send_verification"), follow=True)
    assert "Too many links sent" in second.content.decode()


def test_one_address_verifies_one_account(alice):
    twin = make_user("twin", email="Alice@Example.test", verified_email="")
    page = Client().get(reverse("accounts:verify_email", args=[verification.token_for(twin)]))
    assert page.status_code == 400 and "already verifies another account" in page.content.decode()
    twin.refresh_from_db()
    assert not twin.email_verified


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_links_to_one_address_are_limited_whichever_accounts_ask(inbox, settings):
    from accounts.tasks import send_verification_link

    settings.EMAIL_VERIFICATION_RATE_LIMIT = 2
    users = [make_user(f"flood{n}", email="victim@example.test", verified_email="") for n in range(4)]
    sent = [send_verification_link(user.pk, "http://testserver") for user in users]
    assert sent == [True, True, False, False]
    [first, _second] = inbox.wait_for(2, "victim@example.test")
    assert "flood" not in body_of(first)  # the sign-up's chosen name is not in mail to an unproven address
