"""Staff keep the last word over a channel: a suspension only staff lift, and an inactive owner's channels leave."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import keys, users
from channels_app import channels, routing
from channels_app.models import Channel, ChannelStatus
from tests.channels.conftest import make_channel
from tests.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


def suspended_by(admin_user, channel: Channel) -> None:
    client = Client()
    sign_in(client, admin_user)
    response = client.post(
        "/admin/channels_app/channel/", {"action": "disable", "_selected_action": [channel.pk]}, follow=True
    )
    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.SUSPENDED


def test_an_owner_cannot_resume_a_channel_staff_suspended(catalog, bob, admin_user):
    channel = make_channel(bob, name="suspect")
    suspended_by(admin_user, channel)
    _key, raw = keys.create_key(bob, "api", scope="manage")
    api = Client(headers={"authorization": f"Bearer {raw}"})
    refused = api.post(f"/api/channels/{channel.public_id}/resume")
    assert refused.status_code == 409 and "only staff" in refused.json()["error"]["message"]
    page = Client()
    assert page.login(username="bob", password=PASSWORD)
    answer = page.post(f"/channels/{channel.public_id}/toggle/", follow=True)
    assert "only staff can lift it" in answer.content.decode()
    paused = api.post(f"/api/channels/{channel.public_id}/pause")  # pause, then resume, would lift it
    assert paused.status_code == 409
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.SUSPENDED
    assert admin_user.username not in channel.status_reason  # the owner sees the reason, not who


def test_a_channel_test_never_changes_a_suspended_channels_status(catalog, bob, admin_user, fake_upstream):
    from channels_app import checks

    channel = make_channel(bob, base_url=fake_upstream, keys=["fail-401"])
    channels.suspend(channel, by=admin_user.username)
    checks.test_channel(channel)  # an auth failure would auto-disable, which the owner may resume
    channels.replace_keys(channel, ["good-key"])
    checks.test_channel(channel)  # a success would re-enable an auto-disabled channel
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.SUSPENDED


def test_callers_read_a_suspension_without_the_staff_members_name(catalog, bob, admin_user):
    channel = make_channel(bob)
    suspended_by(admin_user, channel)
    routing.invalidate()
    with pytest.raises(routing.Refusal) as info:
        routing.plan("gpt-4o-mini")
    assert "suspended by staff" in info.value.message and admin_user.username not in info.value.message


def test_staff_lift_a_suspension(catalog, bob, admin_user):
    channel = make_channel(bob)
    channels.suspend(channel, by=admin_user.username)
    client = Client()
    sign_in(client, admin_user)
    client.post("/admin/channels_app/channel/", {"action": "enable", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE


def test_an_inactive_owners_channels_leave_routing_and_return_with_them(catalog, bob, carol):
    make_channel(bob, name="bobs")
    theirs = make_channel(carol, name="carols")
    assert len(routing.plan("gpt-4o-mini").routes) == 2
    users.set_active("bob", False)
    routing.invalidate()  # what the post-commit signal does (this test's transaction never commits)
    assert [r.public_id for r in routing.plan("gpt-4o-mini").routes] == [theirs.public_id]
    users.set_active("bob", True)
    routing.invalidate()
    assert len(routing.plan("gpt-4o-mini").routes) == 2
