from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.errors import HttpError

from accounts.keys import normalise_model_list

from . import channels, checks
from .models import Channel
from .schemas import ChannelIn, ChannelOut, ChannelPatch, TestOut

router = Router(tags=["channels"])


def _own(request, public_id: str) -> Channel:
    return get_object_or_404(Channel, public_id=public_id, owner=request.auth)


def _refuse(exc: ValidationError):
    raise HttpError(422, "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()))


@router.get("", response=list[ChannelOut])
def list_channels(request):
    return list(Channel.objects.for_owner(request.auth).prefetch_related("keys"))


@router.post("", response={201: ChannelOut})
def create_channel(request, payload: ChannelIn):
    draft = channels.ChannelDraft(
        owner_id=request.auth.pk, provider=payload.provider, base_url=payload.base_url, model_names=payload.model_names,
        upstream_keys=[k.strip() for k in payload.upstream_keys if k.strip()], name=payload.name,
        owner_cut=payload.owner_cut_percent / 100, priority=payload.priority, weight=payload.weight,
        model_mapping=payload.model_mapping,
    )  # fmt: skip
    try:
        channel, _warnings = channels.create_channel(draft)
    except ValidationError as exc:
        _refuse(exc)
    return Status(201, channel)


@router.patch("/{public_id}", response=ChannelOut)
def edit_channel(request, public_id: str, payload: ChannelPatch):
    channel = _own(request, public_id)
    changes = payload.dict(exclude_unset=True)
    if "upstream_keys" in changes:
        try:
            channels.replace_keys(channel, [k.strip() for k in changes.pop("upstream_keys") or [] if k.strip()])
        except ValidationError as exc:
            _refuse(exc)
    if "owner_cut_percent" in changes:
        channel.owner_cut = changes.pop("owner_cut_percent") / 100
    if "model_names" in changes:
        channel.model_names = normalise_model_list(changes.pop("model_names"))
        if not channel.model_names:
            raise HttpError(422, "model_names: list at least one model.")
    for field, value in changes.items():
        setattr(channel, field, value)
    channel.save()
    return channel


@router.post("/{public_id}/test", response=TestOut)
def test_channel(request, public_id: str):
    channel = _own(request, public_id)
    result = checks.test_channel(channel)
    channel.refresh_from_db()
    return {"ok": result.ok, "latency_ms": result.latency_ms, "message": result.message, "status": channel.status}


@router.post("/{public_id}/pause", response=ChannelOut)
def pause_channel(request, public_id: str):
    channel = _own(request, public_id)
    channels.pause(channel)
    return channel


@router.post("/{public_id}/resume", response=ChannelOut)
def resume_channel(request, public_id: str):
    channel = _own(request, public_id)
    channels.resume(channel)
    return channel
