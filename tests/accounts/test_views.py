from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import keys
from accounts.models import ApiKey, User
from tests.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token_from(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.cookies["csrftoken"].value


def test_signup_through_the_real_view_with_csrf_enforced():
    client = csrf_client()
    form = {"username": "dora", "email": "dora@example.test", "password1": PASSWORD, "password2": PASSWORD}
    # Without the token the POST is refused and nothing is created.
    assert client.post(reverse("accounts:signup"), form).status_code == 403
    assert not User.objects.filter(username="dora").exists()
    token = csrf_token_from(client, reverse("accounts:signup"))
    response = client.post(reverse("accounts:signup"), {**form, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:keys")
    assert User.objects.filter(username="dora").exists()
    assert client.get(reverse("accounts:keys")).status_code == 200


def test_signup_shows_password_validator_errors_in_place():
    response = Client().post(
        reverse("accounts:signup"), {"username": "eve", "email": "", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.filter(username="eve").exists()


def test_login_with_csrf_and_logout_by_post(alice):
    client = csrf_client()
    token = csrf_token_from(client, reverse("accounts:login"))
    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    token = client.cookies["csrftoken"].value
    assert client.post(reverse("accounts:logout"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get(reverse("accounts:keys")).status_code == 302


def test_login_is_throttled_after_repeated_failures(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(3):
        response = client.post(reverse("accounts:login"), {"username": "alice", "password": "wrong"})
        assert "Please enter a correct username" in response.content.decode()
    # Now even the right password is refused until the window passes.
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_password_change(alice):
    client = Client()
    client.force_login(alice)
    new_password = "an entirely new passphrase 77"
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new_password)


def test_password_reset_mails_a_working_link(alice):
    client = Client()
    client.post(reverse("accounts:password_reset"), {"email": alice.email})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    new_password = "reset passphrase that is long 99"
    response = client.post(
        response.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new_password)


def test_new_key_is_shown_exactly_once(alice):
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("accounts:keys"), {"name": "laptop", "allowed_models": "gpt-4o, claude-sonnet-4-5"})
    assert response.status_code == 200
    page = response.content.decode()
    raw = re.search(r"sk-hub-[A-Za-z0-9_-]{40,}", page).group(0)
    assert keys.lookup(raw).user_id == alice.pk
    assert 'base_url="http://testserver/v1"' in page  # the OpenAI SDK snippet
    # Any later view of the page shows only the prefix.
    later = client.get(reverse("accounts:keys")).content.decode()
    assert raw not in later
    assert ApiKey.objects.get(user=alice).prefix in later


def test_key_form_errors_are_shown_in_place(alice):
    client = Client()
    client.force_login(alice)
    response = client.post(
        reverse("accounts:keys"), {"name": "x", "expires_at": "2001-01-01T00:00", "spend_cap_usd": "-5"}
    )
    page = response.content.decode()
    assert "The expiry must be in the future." in page
    assert "greater than or equal to 0" in page
    assert not ApiKey.objects.exists()


def test_revoke_own_key(alice):
    key, raw = keys.create_key(alice, "old")
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("accounts:key_revoke", args=[key.public_id]))
    assert response.status_code == 302
    assert keys.lookup(raw).revoked


def test_stranger_cannot_revoke_or_see_someone_elses_key(alice, carol):
    key, raw = keys.create_key(alice, "alice-only")
    client = Client()
    client.force_login(carol)
    assert client.post(reverse("accounts:key_revoke", args=[key.public_id])).status_code == 404
    assert key.prefix not in client.get(reverse("accounts:keys")).content.decode()
    assert not keys.lookup(raw).revoked


def test_revoke_needs_post(alice):
    key, _raw = keys.create_key(alice, "old")
    client = Client()
    client.force_login(alice)
    assert client.get(reverse("accounts:key_revoke", args=[key.public_id])).status_code == 405


def test_anonymous_is_sent_to_log_in():
    response = Client().get(reverse("accounts:keys"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_admin_key_changelist_never_shows_the_hash(admin_user, alice):
    key, raw = keys.create_key(alice, "watched")
    client = Client()
    sign_in(client, admin_user)
    page = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert key.prefix in page
    assert key.key_hash not in page and raw not in page
    detail = client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert key.key_hash not in detail


def test_signup_is_rate_limited_per_address(settings):
    settings.SIGNUP_RATE_LIMIT = 2
    client = Client()
    for name in ("ann", "ben"):
        form = {"username": name, "email": "", "password1": PASSWORD, "password2": PASSWORD}
        assert client.post(reverse("accounts:signup"), form).status_code == 302
        client.logout()
    form = {"username": "cat", "email": "", "password1": PASSWORD, "password2": PASSWORD}
    response = client.post(reverse("accounts:signup"), form)
    page = response.content.decode()
    assert response.status_code == 200 and "Too many sign-ups from your address. Try again in" in page
    assert not User.objects.filter(username="cat").exists()
    other = Client(REMOTE_ADDR="192.0.2.7").post(reverse("accounts:signup"), form)
    assert other.status_code == 302  # another address is not held back


def test_password_reset_is_rate_limited_per_address_and_per_email(alice, bob, settings):
    settings.PASSWORD_RESET_RATE_LIMIT = 3
    settings.PASSWORD_RESET_EMAIL_RATE_LIMIT = 2
    url = reverse("accounts:password_reset")
    for address in ("192.0.2.1", "192.0.2.2"):
        assert Client(REMOTE_ADDR=address).post(url, {"email": alice.email}).status_code == 302
    refused = Client(REMOTE_ADDR="192.0.2.3").post(url, {"email": alice.email})
    assert refused.status_code == 200 and "Too many password reset requests. Try again in" in refused.content.decode()
    assert len(mail.outbox) == 2
    one_address = Client(REMOTE_ADDR="192.0.2.9")
    for email in (bob.email, "nobody@example.test", "someone@example.test"):
        assert one_address.post(url, {"email": email}).status_code == 302
    assert "Too many password reset requests" in one_address.post(url, {"email": "x@example.test"}).content.decode()
