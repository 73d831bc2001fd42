"""E-mail notifications (accounts/notifications.py) through a real Celery worker to a real SMTP server
(aiosmtpd on 127.0.0.1): a stopped channel, a spend limit reached, a payout decided, a low balance; the
per-user switches, the verified-address rule, the repeat key and the hourly limit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import notifications
from accounts.models import Notification
from billing import ledger
from billing.pricing import Usage
from billing.tasks import tell_low_balances
from channels_app import channels, spend
from channels_app.models import Channel
from tests.conftest import make_user, wait_for
from tests.mail import body_of, smtp_mailers, smtp_server
from tests.relay.conftest import add_channel

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_channel_tokenhub_disables_tells_its_owner_once(inbox, bob):
    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="spare")
    assert channels.auto_disable(channel.pk, "upstream said 401: invalid key")
    [message] = inbox.wait_for(1, bob.email)
    assert message["Subject"] == "Your channel spare was disabled"
    assert "invalid key" in body_of(message) and "/accounts/settings/" in body_of(message)
    channels.resume(Channel.objects.get(pk=channel.pk))
    assert channels.auto_disable(channel.pk, "upstream said 401 again")  # the same stop, soon after
    wait_for(lambda: Notification.objects.filter(user=bob).count() == 1)
    assert len(inbox.to(bob.email)) == 1  # told once per TOKENHUB_NOTIFY_REPEAT_SECONDS


def test_switched_off_kinds_and_unverified_addresses_get_no_mail(inbox, bob, alice):
    client = Client()
    client.force_login(bob)
    form = {"email": bob.email, "low_balance_alert_usd": "", "notify_payout": "on"}  # all but payouts off
    assert client.post(reverse("accounts:settings"), form).status_code == 302
    bob.refresh_from_db()
    assert "channel_stopped" in bob.notifications_off and "payout" not in bob.notifications_off
    assert notifications.deliver(bob.pk, "channel_stopped", "x", "s", "b") == notifications.Outcome.OFF
    stranger = make_user("mallory", email="victim@example.test", verified_email="")
    assert notifications.deliver(stranger.pk, "payout", "x", "s", "b") == notifications.Outcome.UNVERIFIED
    assert notifications.deliver(bob.pk, "payout", "p1", "Payout", "body") == notifications.Outcome.SENT
    assert [m["Subject"] for m in inbox.wait_for(1)] == ["Payout"]


def test_a_decided_payout_and_a_reached_spend_limit_tell_the_owner(inbox, bob, alice, admin_user):
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="seed", actor="test")
    ledger.hold(user_id=alice.pk, amount=Decimal("4"), request_id="c1")
    ledger.settle(request_id="c1", cost=Decimal("4"), usage=Usage(), owner_id=bob.pk, owner_cut=Decimal("0.5"))
    payout = ledger.request_payout(owner_id=bob.pk, amount=Decimal("1.5"), destination="IBAN DE02")
    assert ledger.decide_payout(payout_id=payout.pk, paid=False, actor="admin:root")
    [rejected] = inbox.wait_for(1, bob.email)
    assert rejected["Subject"] == "Your payout of $1.50 was rejected" and "back in your" in body_of(rejected)

    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="capped", daily_spend_limit_usd=Decimal("1"))
    reason = "at its owner's daily spend limit until 00:00 UTC"
    spend._told_periods.clear()
    spend.tell_owner(channel.pk, reason)
    spend.tell_owner(channel.pk, reason)  # the relay refuses many calls: the owner hears once
    limit = inbox.wait_for(2, bob.email)[1]
    assert limit["Subject"] == "Your channel capped reached its spend limit" and reason in body_of(limit)
    spend._told_periods.clear()  # another process: the notification's own repeat key holds
    spend.tell_owner(channel.pk, reason)
    wait_for(lambda: Notification.objects.filter(user=bob).count() == 2)
    assert len(inbox.to(bob.email)) == 2


def test_the_low_balance_task_tells_users_below_their_alert_once_a_day(inbox, alice, carol):
    ledger.grant(user_id=alice.pk, amount=Decimal("2"), memo="seed", actor="test")
    ledger.grant(user_id=carol.pk, amount=Decimal("2"), memo="seed", actor="test")
    type(alice).objects.filter(pk=alice.pk).update(low_balance_alert_usd=Decimal("5"))
    type(carol).objects.filter(pk=carol.pk).update(low_balance_alert_usd=Decimal("1"))  # not below
    tell_low_balances.delay()
    [message] = inbox.wait_for(1, alice.email)
    assert message["Subject"] == "Your balance is $2.00, below your alert of $5.00"
    tell_low_balances.delay()
    wait_for(lambda: Notification.objects.count() == 1)
    assert len(inbox.messages) == 1 and not inbox.to(carol.email)
    page = Client()
    page.force_login(alice)
    assert "below your alert" in page.get(reverse("billing:dashboard")).content.decode()


def test_a_user_gets_at_most_the_hourly_limit_of_messages(inbox, bob, settings):
    settings.TOKENHUB_NOTIFY_HOURLY_LIMIT = 2
    outcomes = [notifications.deliver(bob.pk, "payout", f"p{n}", f"Payout {n}", "b") for n in range(4)]
    assert outcomes == ["sent", "sent", "hourly limit", "hourly limit"]
    assert len(inbox.wait_for(2)) == 2


def test_a_mail_server_that_is_down_is_recorded_and_the_event_can_be_told_again(settings, bob):
    settings.MAILERS = smtp_mailers(9)  # nothing listens on port 9
    with pytest.raises(OSError):
        notifications.deliver(bob.pk, "payout", "p-down", "Payout", "b")
    assert not Notification.objects.get(user=bob).sent
    with smtp_server() as (received, port):
        settings.MAILERS = smtp_mailers(port)
        assert notifications.deliver(bob.pk, "payout", "p-down", "Payout", "b") == "sent"  # Celery's retry
        assert received.wait_for(1)


def test_mail_speaks_the_recipients_language(inbox, bob, alice):
    type(bob).objects.filter(pk=bob.pk).update(language="zh-hans")
    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="备用")
    assert channels.auto_disable(channel.pk, "upstream said 401")
    [message] = inbox.wait_for(1, bob.email)
    assert message["Subject"] == "你的渠道 备用 已被停用"
    assert "在此期间不会有调用发往它" in body_of(message) and "可在设置页面关闭此类邮件" in body_of(message)
    english = add_channel(alice, "http://127.0.0.1:9/v1", name="spare")
    assert channels.auto_disable(english.pk, "upstream said 401")
    [theirs] = inbox.wait_for(1, alice.email)
    assert theirs["Subject"] == "Your channel spare was disabled"
