"""Private channels: shared with chosen users, by username or by an invitation link.

A private channel is routed only for the keys of its owner and of the users it is shared with
(channels_app/routing.py); to everyone else it does not exist, in refusals and listings alike.
The invitation link carries a random token (256 bits); making a new link voids the old one.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import audit

from .models import Channel, ChannelShare, Visibility

MAX_SHARES = 500  # users per channel: the routing snapshot carries every share


class InvitationInvalid(Exception):
    """The link is unknown, was replaced, or its channel is no longer private."""

    message = gettext_lazy("This invitation link does not work (any more). Ask the channel's owner for a new one.")


def set_visibility(channel: Channel, visibility: str) -> Channel:
    if visibility not in Visibility.values:
        raise ValidationError(
            {"visibility": _("Visibility is one of: %(choices)s.") % {"choices": ", ".join(Visibility.values)}}
        )
    before = channel.visibility
    channel.visibility = visibility
    if visibility == Visibility.PUBLIC:
        channel.invitation_token = ""  # going private again must not revive a link that leaked
    with transaction.atomic():
        channel.save(update_fields=["visibility", "invitation_token", "updated_at"])  # routing rebuilds on commit
        if before != visibility:
            _record(channel, "channel.visibility", before={"visibility": before}, after={"visibility": visibility})
    return channel


def _record(channel: Channel, action: str, **values) -> None:
    audit.record(action, owner_id=channel.owner_id, target=f"channel:{channel.public_id}", **values)


def share_with(channel: Channel, username: str, via: str = "owner") -> ChannelShare:
    """Share with an active user by username; sharing twice is the same share."""
    if not username.strip():
        raise ValidationError({"username": _("Give the username of the user to share the channel with.")})
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError({"username": _("No active user is called “%(name)s”.") % {"name": username.strip()}})
    return _add(channel, user, via)


def _add(channel: Channel, user, via: str) -> ChannelShare:
    if user.pk == channel.owner_id:
        raise ValidationError({"username": _("That is you: an owner's own calls may always use their channels.")})
    existing = ChannelShare.objects.filter(channel=channel, user=user).first()
    if existing:
        return existing
    if ChannelShare.objects.filter(channel=channel).count() >= MAX_SHARES:
        raise ValidationError(
            {"username": _("A channel is shared with at most %(count)s users.") % {"count": MAX_SHARES}}
        )
    try:
        with transaction.atomic():
            share = ChannelShare.objects.create(channel=channel, user=user, via=via)
            _record(channel, "channel.shared", after={"user": user.get_username(), "via": via})
            return share
    except IntegrityError:  # a concurrent share of the same user
        return ChannelShare.objects.get(channel=channel, user=user)


def unshare(channel: Channel, username: str) -> bool:
    with transaction.atomic():
        deleted, _ = ChannelShare.objects.filter(channel=channel, user__username=username).delete()
        if deleted:
            _record(channel, "channel.unshared", before={"user": username})
    return bool(deleted)


def new_invitation(channel: Channel) -> str:
    """A fresh link token; the previous link stops working."""
    channel.invitation_token = secrets.token_urlsafe(32)
    with transaction.atomic():
        channel.save(update_fields=["invitation_token", "updated_at"])
        _record(channel, "channel.invitation", after={"link": "new"})  # the token is a secret: not recorded
    return channel.invitation_token


def disable_invitation(channel: Channel) -> None:
    channel.invitation_token = ""
    with transaction.atomic():
        channel.save(update_fields=["invitation_token", "updated_at"])
        _record(channel, "channel.invitation", after={"link": "disabled"})


def invited_channel(token: str) -> Channel:
    """The private channel a link invites to, or InvitationInvalid."""
    if not token or len(token) > 64:
        raise InvitationInvalid
    channel = Channel.objects.filter(invitation_token=token, visibility=Visibility.PRIVATE).first()
    if channel is None or not secrets.compare_digest(channel.invitation_token, token):
        raise InvitationInvalid
    return channel


def accept_invitation(token: str, user) -> Channel:
    channel = invited_channel(token)
    if user.pk != channel.owner_id:
        _add(channel, user, via="link")
    return channel


def shared_users(channel: Channel):
    return ChannelShare.objects.filter(channel=channel).select_related("user").order_by("user__username")
