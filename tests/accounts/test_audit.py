"""The audit log (accounts/audit.py): every change to keys, channels, money and payouts is recorded with who
made it, when, from where (the site, the JSON API, the admin, manage.py, a Celery task) and before → after;
append-only; never a secret; the owner sees their own entries and nobody else's."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from accounts import keys
from accounts.models import AuditEntry
from billing import ledger
from billing.models import Payout
from billing.pricing import Usage
from channels_app import channels
from channels_app.models import Channel
from tests.conftest import sign_in, wait_for
from tests.relay.conftest import add_channel

pytestmark = pytest.mark.django_db


def entries(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("id"))


def test_keys_are_recorded_from_the_site_and_the_api_with_the_address(alice):
    page = Client(REMOTE_ADDR="203.0.113.7")
    page.force_login(alice)
    page.post(reverse("accounts:keys"), {"name": "laptop", "scope": "relay"})
    key = alice.api_keys.get(name="laptop")
    _tool, manage = keys.create_key(alice, "tool", scope="manage")
    api = Client(REMOTE_ADDR="198.51.100.2")
    api.post(f"/api/keys/{key.public_id}/revoke", HTTP_AUTHORIZATION=f"Bearer {manage}")
    created, _tool_entry, revoked = entries(owner=alice)
    assert (created.action, created.via, created.ip, created.actor) == ("key.created", "web", "203.0.113.7", alice)
    # A change made with an API key is the key's owner's, and names the key (by its displayed start).
    assert revoked.actor == alice and revoked.actor_label == f"alice (key {_tool.prefix}…)"
    assert created.after["name"] == "laptop" and created.after["prefix"] == key.prefix
    assert (revoked.action, revoked.via, revoked.ip, revoked.target) == (
        "key.revoked",
        "api",
        "198.51.100.2",
        f"key:{key.public_id}",
    )
    assert key.prefix in str(created.after) and not any(
        raw in str(e.after) for e in entries() for raw in (manage, key.key_hash)
    )


def test_channel_changes_record_before_and_after_and_never_the_upstream_key(bob):
    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="spare", keys_=("sk-upstream-audited-1234",))
    page = Client()
    sign_in(page, bob)
    form = {"daily_spend_limit_usd": "5", "monthly_spend_limit_usd": ""}
    page.post(reverse("channels:limits", args=[channel.public_id]), form)
    page.post(reverse("channels:toggle", args=[channel.public_id]))  # pause
    channels.replace_keys(Channel.objects.get(pk=channel.pk), ["sk-upstream-rotated-5678"])
    made, limits, paused, rotated = entries(target=f"channel:{channel.public_id}")
    assert made.action == "channel.created" and made.after["upstream_keys"] == 1
    assert (limits.action, limits.before, limits.after) == (
        "channel.limits",
        {"daily_spend_limit_usd": None},
        {"daily_spend_limit_usd": "5.00000000"},
    )
    assert paused.action == "channel.paused" and paused.after["status"] == "paused"
    assert rotated.before == {"upstream_keys": 1} and rotated.after == {"upstream_keys": 1}
    everything = str([(e.before, e.after) for e in entries()])
    assert "sk-upstream-audited-1234" not in everything and "sk-upstream-rotated-5678" not in everything
    page_text = page.get(reverse("channels:detail", args=[channel.public_id])).content.decode()
    assert "Channel spend limits changed" in page_text and "daily_spend_limit_usd: (none) → 5.00000000" in page_text


def test_money_operators_and_staff_are_recorded_as_who_they_are(alice, bob, admin_user):
    call_command("grant", "alice", "3", "--memo", "support credit")
    admin = Client(REMOTE_ADDR="192.0.2.9")
    sign_in(admin, admin_user)
    changelist = reverse("admin:accounts_user_changelist")
    admin.post(
        changelist,
        {"action": "grant_credit", "_selected_action": [alice.pk], "apply": "1", "amount": "2", "memo": "goodwill"},
    )
    ledger.hold(user_id=alice.pk, amount=Decimal("4"), request_id="c1")
    ledger.settle(request_id="c1", cost=Decimal("4"), usage=Usage(), owner_id=bob.pk, owner_cut=Decimal("0.5"))
    owner = Client()
    sign_in(owner, bob)
    owner.post(reverse("billing:request_payout"), {"amount": "1.5", "destination": "IBAN DE03"})
    payout = Payout.objects.get(owner=bob)
    admin.post(reverse("admin:billing_payout_changelist"), {"action": "mark_paid", "_selected_action": [payout.pk]})
    cli, staff_grant = entries(owner=alice, action="money.adjust")
    assert cli.via == "cli" and re.fullmatch(r"cli:\S+ \(manage.py grant\)", cli.actor_label)
    assert cli.after["amount"] == "3.00000000" and cli.after["memo"] == "support credit"
    assert (staff_grant.via, staff_grant.actor, staff_grant.ip) == ("admin", admin_user, "192.0.2.9")
    requested, paid = entries(owner=bob, action__startswith="payout.")
    assert requested.via == "web" and requested.after["destination"] == "IBAN DE03"
    assert (paid.action, paid.actor, paid.before, paid.after["status"]) == (
        "payout.paid",
        admin_user,
        {"status": "pending"},
        "paid",
    )
    call_command("make_redemption_codes", "--amount", "1", "--count", "2", "--batch", "audit")
    [batch] = entries(action="codes.batch")
    assert batch.via == "cli" and batch.after["total"] == "2.00000000"


def test_owners_see_only_their_own_entries_and_the_admin_cannot_change_them(alice, carol, admin_user):
    keys.create_key(alice, "alice's")
    mine, theirs = Client(), Client()
    mine.force_login(alice)
    theirs.force_login(carol)
    assert "alice&#x27;s" in mine.get(reverse("accounts:activity")).content.decode()
    assert "alice" not in theirs.get(reverse("accounts:activity")).content.decode().split("<main")[1]
    admin = Client()
    sign_in(admin, admin_user)
    entry = AuditEntry.objects.get()
    assert admin.get(reverse("admin:accounts_auditentry_changelist")).status_code == 200
    assert admin.get(reverse("admin:accounts_auditentry_add")).status_code == 403
    assert admin.post(reverse("admin:accounts_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_change_rolled_back_leaves_no_entry(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        keys.create_key(alice, "never")
        raise RuntimeError("the request failed after the key was made")
    assert not AuditEntry.objects.exists() and not alice.api_keys.exists()


@pytest.mark.services
def test_the_database_refuses_to_change_or_remove_an_entry(alice):
    keys.create_key(alice, "kept")
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.update(actor_label="someone else")
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get().actor_label == "system"


@pytest.mark.django_db(transaction=True)
def test_a_celery_task_is_named_as_the_actor_and_the_relay_as_the_system(bob, fake_upstream, celery_worker):
    from channels_app.tasks import retest_disabled_channels

    channel = add_channel(bob, fake_upstream, name="back again")
    channels.auto_disable(channel.pk, "upstream said 401")  # as the relay does, outside any request
    retest_disabled_channels.delay()
    wait_for(lambda: entries(action="channel.re_enabled"))
    [enabled] = entries(action="channel.re_enabled")
    assert (enabled.actor_label, enabled.via) == ("task:channels_app.tasks.retest_disabled_channels", "task")
    [disabled] = entries(action="channel.auto_disabled")
    assert (disabled.actor_label, disabled.via, disabled.owner) == ("system", "system", bob)


def test_the_json_api_lists_the_accounts_own_entries_and_changes_its_settings(alice, carol):
    _key, manage = keys.create_key(alice, "tool", scope="manage")
    _relay_key, relay = keys.create_key(alice, "relay only")
    _carol_key, carol_manage = keys.create_key(carol, "carol tool", scope="manage")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {manage}"}
    patched = Client().patch(
        "/api/me",
        {"low_balance_alert_usd": "2.5", "notifications_off": ["payout"]},
        content_type="application/json",
        **auth,
    )
    assert patched.status_code == 200 and patched.json()["low_balance_alert_usd"] == "2.50000000"
    assert patched.json()["notifications_off"] == ["payout"] and patched.json()["email_verified"] is True
    bad = Client().patch("/api/me", {"notifications_off": ["spam"]}, content_type="application/json", **auth)
    assert bad.status_code == 422 and "Unknown notification kinds: spam" in bad.json()["error"]["message"]
    relay_refused = Client().patch(
        "/api/me", {"low_balance_alert_usd": "1"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {relay}"
    )
    assert relay_refused.status_code == 403
    listed = Client().get("/api/activity", **auth).json()
    assert [e["action"] for e in listed] == ["account.settings", "key.created", "key.created"]
    assert listed[0]["after"] == {"low_balance_alert_usd": "2.50000000", "notifications_off": ["payout"]}
    theirs = Client().get("/api/activity", HTTP_AUTHORIZATION=f"Bearer {carol_manage}").json()
    assert [e["action"] for e in theirs] == ["key.created"]


def test_owners_see_staff_as_tokenhub_and_nobody_elses_address(alice, bob, carol, admin_user):
    from channels_app import sharing

    admin = Client(REMOTE_ADDR="10.8.0.5")
    sign_in(admin, admin_user)
    admin.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "grant_credit", "_selected_action": [alice.pk], "apply": "1", "amount": "1", "memo": "sorry"},
    )
    page = Client()
    page.force_login(alice)
    text = page.get(reverse("accounts:activity")).content.decode()
    assert "TokenHub staff" in text and "10.8.0.5" not in text and "root" not in text.split("<main")[1]
    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="private", visibility="private")
    token = sharing.new_invitation(channel)
    joiner = Client(REMOTE_ADDR="203.0.113.99")
    joiner.force_login(carol)
    joiner.get(reverse("channels:invitation", args=[token]))
    joiner.post(reverse("channels:invitation", args=[token]))
    owner = Client()
    owner.force_login(bob)
    detail = owner.get(reverse("channels:detail", args=[channel.public_id])).content.decode()
    assert "Channel shared with a user" in detail and "203.0.113.99" not in detail
    assert AuditEntry.objects.get(action="channel.shared").ip == "203.0.113.99"  # kept, for the admin


def test_staff_edits_in_the_admin_are_audited_and_nothing_audited_can_be_deleted_there(alice, admin_user):
    from django.contrib import admin as django_admin
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import ApiKey

    assert not django_admin.site.is_registered(TOTPDevice) and not django_admin.site.is_registered(StaticDevice)
    staff = Client()
    sign_in(staff, admin_user)
    change = reverse("admin:accounts_user_change", args=[alice.pk])
    form = staff.get(change).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(is_staff="on", email="alice@example.test", date_joined_0="2026-01-01", date_joined_1="00:00:00")
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.pop("groups", None)
    data.pop("user_permissions", None)
    data["notifications_off"] = "[]"
    assert staff.post(change, data).status_code == 302
    [made_staff] = entries(action="account.edited_by_staff")
    assert (made_staff.before, made_staff.after, made_staff.actor) == (
        {"is_staff": False},
        {"is_staff": True},
        admin_user,
    )
    key, _raw = keys.create_key(alice, "kept")
    assert staff.post(reverse("admin:accounts_apikey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()
