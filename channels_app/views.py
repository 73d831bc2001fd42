from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import audit

from . import channels, checks, marketplace, sharing, spend
from .forms import ChannelForm, ShareForm, SpendLimitsForm
from .models import Channel, ChannelStatus


def get_channel_for_owner(request, public_id: str) -> Channel:
    """The owner's own channel, or 404 for anyone else's."""
    return get_object_or_404(Channel, public_id=public_id, owner=request.user)


def catalog(request):
    filters = marketplace.Filters(
        query=request.GET.get("q", "").strip()[:100],
        provider=request.GET.get("provider", "").strip()[:40],
        capability=request.GET.get("capability", "").strip()[:20],
        only_available=bool(request.GET.get("available")),
    )
    user_id = request.user.pk if request.user.is_authenticated else 0
    context = {
        "rows": marketplace.rows(user_id, filters),
        "filters": filters,
        "providers": marketplace.providers(),
        "capabilities": marketplace.capability_choices(),
    }
    if request.htmx:
        return render(request, "channels_app/catalog.html#catalog-table", context)
    return render(request, "channels_app/catalog.html", context)


@login_required
def channel_list(request):
    form = ChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        draft = channels.ChannelDraft(
            owner_id=request.user.pk,
            provider=data["provider"],
            base_url=data["base_url"],
            model_names=data["model_names"],
            upstream_keys=data["upstream_keys"],
            name=data["name"],
            owner_cut=data["cut_percent"] / 100,
            weight=data["weight"],
            model_mapping=data["model_mapping"],
            visibility=data["visibility"],
            daily_spend_limit_usd=data["daily_spend_limit_usd"],
            monthly_spend_limit_usd=data["monthly_spend_limit_usd"],
        )
        try:
            channel, warnings = channels.create_channel(draft)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(
                    "cut_percent" if field == "owner_cut" else field if field in form.fields else None, errors
                )
        else:
            for warning in warnings:
                messages.warning(request, warning)
            messages.success(
                request, _("Channel “%(name)s” added. Test it to check the key works.") % {"name": channel.name}
            )
            return redirect("channels:detail", public_id=channel.public_id)
    context = {"form": form, "channels": Channel.objects.for_owner(request.user).prefetch_related("keys")}
    return render(request, "channels_app/channels.html", context, status=400 if form.errors else 200)


def sharing_context(request, channel: Channel, form: ShareForm | None = None) -> dict:
    link = channel.invitation_token and request.build_absolute_uri(
        reverse("channels:invitation", args=[channel.invitation_token])
    )
    return {
        "channel": channel,
        "shares": sharing.shared_users(channel),
        "share_form": form or ShareForm(),
        "link": link,
    }


def limits_context(channel: Channel, form: SpendLimitsForm | None = None) -> dict:
    today, month = spend.current(channel.pk)
    limits = [
        ("Today", today, channel.daily_spend_limit_usd),
        ("This month", month, channel.monthly_spend_limit_usd),
    ]
    rows = [
        {"label": label, "spent": spent, "limit": limit, "left": max(limit - spent, 0) if limit else None}
        for label, spent, limit in limits
    ]
    initial = {field: getattr(channel, field) for field in channels.SPEND_LIMITS}
    return {"spend_rows": rows, "limits_form": form or SpendLimitsForm(initial=initial)}


def detail_context(channel: Channel) -> dict:
    entries = audit.entries_for(channel.owner_id).filter(target=channels.target(channel))[:20]
    return {"keys": channel.keys.all(), "audit_entries": entries}


@login_required
def channel_detail(request, public_id: str):
    channel = get_channel_for_owner(request, public_id)
    context = {**sharing_context(request, channel), **limits_context(channel), **detail_context(channel)}
    return render(request, "channels_app/channel_detail.html", context)


@login_required
@require_POST
def channel_limits(request, public_id: str):
    channel = get_channel_for_owner(request, public_id)
    form = SpendLimitsForm(request.POST)
    if form.is_valid():
        channels.edit_channel(channel, dict(form.cleaned_data))
        messages.success(request, _("Spend limits saved: they apply from the next call."))
        return redirect("channels:detail", public_id=public_id)
    context = {**sharing_context(request, channel), **limits_context(channel, form), **detail_context(channel)}
    return render(request, "channels_app/channel_detail.html", context, status=400)


SHARING_ACTIONS = {
    "public": lambda channel, post: sharing.set_visibility(channel, "public"),
    "private": lambda channel, post: sharing.set_visibility(channel, "private"),
    "unshare": lambda channel, post: sharing.unshare(channel, post.get("username", "")),
    "invite": lambda channel, post: sharing.new_invitation(channel),
    "disable_invite": lambda channel, post: sharing.disable_invitation(channel),
}


@login_required
@require_POST
def channel_sharing(request, public_id: str):
    """Who may use the channel: visibility, shares by username, the invitation link."""
    channel = get_channel_for_owner(request, public_id)
    action, form, status = request.POST.get("action", ""), None, 200
    if action == "share":
        form = ShareForm(request.POST)
        try:
            if form.is_valid():
                sharing.share_with(channel, form.cleaned_data["username"])
                form = None
        except ValidationError as exc:
            form.add_error("username", exc.message_dict.get("username", exc.messages))
        status = 400 if form is not None else 200
    elif action in SHARING_ACTIONS and (action != "invite" or channel.visibility == "private"):
        SHARING_ACTIONS[action](channel, request.POST)
    else:
        status = 400
    channel.refresh_from_db()
    context = sharing_context(request, channel, form)
    if request.htmx:
        return render(request, "channels_app/channel_detail.html#sharing", context, status=status)
    if status != 200:  # the whole page again, with the form's error
        context.update(limits_context(channel), **detail_context(channel))
        return render(request, "channels_app/channel_detail.html", context, status=status)
    return redirect("channels:detail", public_id=public_id)


@login_required
def invitation(request, token: str):
    """An invitation link: GET shows whose channel it is, POST accepts it."""
    try:
        channel = sharing.invited_channel(token)
    except sharing.InvitationInvalid as exc:
        return render(request, "channels_app/invitation.html", {"invalid": exc.message}, status=404)
    if request.method == "POST":
        sharing.accept_invitation(token, request.user)
        messages.success(
            request,
            _("“%(name)s” by %(username)s now serves your keys' calls.")
            % {"name": channel.name, "username": channel.owner.username},
        )
        return redirect("channels:catalog")
    return render(request, "channels_app/invitation.html", {"channel": channel, "own": channel.owner == request.user})


@login_required
@require_POST
def channel_test(request, public_id: str):
    channel = get_channel_for_owner(request, public_id)
    checks.test_channel(channel)
    channel.refresh_from_db()
    if request.htmx:
        return render(request, "channels_app/channel_detail.html#test-result", {"channel": channel})
    return redirect("channels:detail", public_id=public_id)


@login_required
@require_POST
def channel_toggle(request, public_id: str):
    channel = get_channel_for_owner(request, public_id)
    if channel.status == ChannelStatus.ACTIVE:
        channels.pause(channel)
        messages.success(
            request, _("“%(name)s” paused: no calls go to it until you resume it.") % {"name": channel.name}
        )
    else:
        try:
            channels.resume(channel)
        except channels.ChannelSuspended as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("“%(name)s” resumed.") % {"name": channel.name})
    return redirect("channels:detail", public_id=public_id)
