from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from ninja import Router, Status
from ninja.errors import HttpError

from . import channels, checks, sharing
from .models import Channel
from .schemas import ChannelIn, ChannelOut, ChannelPatch, InvitedChannelOut, ShareIn, TestOut

router = Router(tags=["channels"])
# A django ValidationError from the domain is answered 422 with its fields by tokenhub/api.py.


def _own(request, public_id: str) -> Channel:
    return get_object_or_404(Channel, public_id=public_id, owner=request.auth)


def _stripped(keys: list[str] | None) -> list[str] | None:
    return None if keys is None else [key.strip() for key in keys if key.strip()]


@router.get("", response=list[ChannelOut])
def list_channels(request):
    return list(Channel.objects.for_owner(request.auth).prefetch_related("keys"))


@router.post("", response={201: ChannelOut})
def create_channel(request, payload: ChannelIn):
    channels.refuse_priority_unless_staff(request.auth, payload.priority)
    draft = channels.ChannelDraft(
        owner_id=request.auth.pk,
        provider=payload.provider,
        base_url=payload.base_url,
        model_names=payload.model_names,
        upstream_keys=_stripped(payload.upstream_keys),
        name=payload.name,
        owner_cut=payload.owner_cut_percent / 100,
        priority=payload.priority or 0,
        weight=payload.weight,
        model_mapping=payload.model_mapping,
        visibility=payload.visibility,
        daily_spend_limit_usd=payload.daily_spend_limit_usd,
        monthly_spend_limit_usd=payload.monthly_spend_limit_usd,
    )
    channel, _warnings = channels.create_channel(draft)
    return Status(201, channel)


@router.patch("/{public_id}", response=ChannelOut)
def edit_channel(request, public_id: str, payload: ChannelPatch):
    channel = _own(request, public_id)
    changes = payload.dict(exclude_unset=True)
    channels.refuse_priority_unless_staff(request.auth, changes.get("priority"))
    if "owner_cut_percent" in changes:
        percent = changes.pop("owner_cut_percent")
        changes["owner_cut"] = None if percent is None else percent / 100
    if "upstream_keys" in changes:
        changes["upstream_keys"] = _stripped(changes["upstream_keys"])
    return channels.edit_channel(channel, changes)


@router.post("/{public_id}/test", response=TestOut)
def test_channel(request, public_id: str):
    channel = _own(request, public_id)
    result = checks.test_channel(channel)
    channel.refresh_from_db()
    return {"ok": result.ok, "latency_ms": result.latency_ms, "message": result.message, "status": channel.status}


@router.post("/{public_id}/pause", response=ChannelOut)
def pause_channel(request, public_id: str):
    channel = _own(request, public_id)
    try:
        channels.pause(channel)
    except channels.ChannelSuspended as exc:
        raise HttpError(409, str(exc)) from None
    return channel


@router.post("/{public_id}/resume", response=ChannelOut)
def resume_channel(request, public_id: str):
    channel = _own(request, public_id)
    try:
        channels.resume(channel)
    except channels.ChannelSuspended as exc:
        raise HttpError(409, str(exc)) from None
    return channel


@router.post("/{public_id}/shares", response=ChannelOut)
def share_channel(request, public_id: str, payload: ShareIn):
    """Share a private channel with a user (by username); the same share again changes nothing."""
    channel = _own(request, public_id)
    sharing.share_with(channel, payload.username)
    return channel


@router.delete("/{public_id}/shares/{username}", response=ChannelOut)
def unshare_channel(request, public_id: str, username: str):
    channel = _own(request, public_id)
    if not sharing.unshare(channel, username):
        raise HttpError(404, _("The channel is not shared with “%(name)s”.") % {"name": username})
    return channel


@router.post("/{public_id}/invitation", response=ChannelOut)
def new_invitation(request, public_id: str):
    """A new invitation link (the previous one stops working); only for a private channel."""
    channel = _own(request, public_id)
    if channel.visibility != "private":
        raise HttpError(409, _("Make the channel private first: a public channel serves everyone already."))
    sharing.new_invitation(channel)
    return channel


@router.delete("/{public_id}/invitation", response=ChannelOut)
def disable_invitation(request, public_id: str):
    channel = _own(request, public_id)
    sharing.disable_invitation(channel)
    return channel


@router.post("/invitations/{token}/accept", response=InvitedChannelOut)
def accept_invitation(request, token: str):
    try:
        return sharing.accept_invitation(token, request.auth)
    except sharing.InvitationInvalid as exc:
        raise HttpError(404, str(exc.message)) from None
