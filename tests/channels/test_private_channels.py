"""Private channels: routed only for their owner's and shared users' calls, invisible to everyone else
(refusals, model listings, the catalog page); shared by username or an invitation link."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from channels_app import channels, routing, sharing
from channels_app.models import ChannelShare, Visibility
from tests.channels.conftest import make_channel


@pytest.fixture
def private(catalog, bob):
    channel = make_channel(bob, visibility=Visibility.PRIVATE, name="bob's secret deal")
    routing.invalidate()
    return channel


def test_a_private_channel_does_not_exist_for_a_stranger(private, carol):
    with pytest.raises(routing.Refusal) as refusal:
        routing.plan("gpt-4o-mini", user_id=carol.pk)
    # The same answer as for a model nobody serves: no count, no name, no id.
    assert refusal.value.code == "no_channel" and refusal.value.message == 'No channel serves "gpt-4o-mini" right now.'
    assert "secret" not in refusal.value.detail and private.public_id not in refusal.value.detail


def test_it_serves_its_owner_and_the_users_it_is_shared_with(private, alice, bob, carol):
    sharing.share_with(private, "alice")
    routing.invalidate()
    for user in (alice, bob):
        assert [r.channel_id for r in routing.plan("gpt-4o-mini", user_id=user.pk).routes] == [private.pk]
    with pytest.raises(routing.Refusal):
        routing.plan("gpt-4o-mini", user_id=carol.pk)


def test_a_shared_users_refusal_says_the_private_channel_is_theirs_and_why(private, alice):
    sharing.share_with(private, "alice")
    channels.pause(private)
    routing.invalidate()
    with pytest.raises(routing.Refusal) as refusal:
        routing.plan("gpt-4o-mini", user_id=alice.pk)
    assert "1 channel lists it — #1 (private, shared with you) disabled by owner" in refusal.value.message


def test_beside_a_public_channel_a_stranger_is_told_only_of_the_public_one(private, carol, alice):
    public = make_channel(alice, name="alice public")
    channels.pause(public)
    routing.invalidate()
    with pytest.raises(routing.Refusal) as refusal:
        routing.plan("gpt-4o-mini", user_id=carol.pk)
    assert "1 channel lists it" in refusal.value.message and "private" not in refusal.value.message


def test_a_private_channels_uncatalogued_model_is_not_hinted_at(catalog, bob, carol):
    make_channel(bob, models=("gpt-4o-mini", "secret-model-x"), visibility=Visibility.PRIVATE)
    routing.invalidate()
    with pytest.raises(routing.Refusal) as refusal:
        routing.plan("secret-model-x", user_id=carol.pk)
    assert refusal.value.code == "model_not_found"  # not "listed by a channel but missing from the catalog"


def test_an_invitation_link_shares_until_replaced_or_the_channel_goes_public(private, alice, carol, bob):
    first = sharing.new_invitation(private)
    sharing.accept_invitation(first, alice)
    second = sharing.new_invitation(private)
    with pytest.raises(sharing.InvitationInvalid):
        sharing.accept_invitation(first, carol)  # the old link stopped working
    sharing.accept_invitation(second, alice)  # accepting twice is one share
    assert list(ChannelShare.objects.values_list("user__username", "via")) == [("alice", "link")]
    sharing.accept_invitation(second, bob)  # the owner: nothing to share with themselves
    assert ChannelShare.objects.count() == 1
    sharing.set_visibility(private, Visibility.PUBLIC)
    with pytest.raises(sharing.InvitationInvalid):
        sharing.invited_channel(second)
    sharing.set_visibility(private, Visibility.PRIVATE)  # private again: the old link stays dead
    with pytest.raises(sharing.InvitationInvalid):
        sharing.invited_channel(second)
    for token in ("", "x" * 65, "not-a-token"):
        with pytest.raises(sharing.InvitationInvalid):
            sharing.invited_channel(token)


@pytest.mark.parametrize("username, message", [("nobody", "No active user"), ("bob", "That is you"), (" ", "Give")])
def test_sharing_with_nobody_or_oneself_is_refused(private, username, message):
    with pytest.raises(ValidationError, match=message):
        sharing.share_with(private, username)


def test_a_deactivated_user_loses_the_share_in_routing(private, alice):
    sharing.share_with(private, "alice")
    alice.is_active = False
    alice.save()
    routing.invalidate()
    with pytest.raises(routing.Refusal):
        routing.plan("gpt-4o-mini", user_id=alice.pk)


def test_the_catalog_page_shows_a_private_channels_models_available_only_to_its_users(private, client, alice, carol):
    sharing.share_with(private, "alice")
    routing.invalidate()
    client.force_login(carol)
    stranger = client.get("/models/?available=1&q=gpt-4o-mini").content.decode()
    client.force_login(alice)
    shared = client.get("/models/?available=1&q=gpt-4o-mini").content.decode()
    assert "<code>gpt-4o-mini</code>" not in stranger
    assert "<code>gpt-4o-mini</code>" in shared
