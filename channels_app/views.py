from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import channels, checks, routing
from .forms import ChannelForm
from .models import CatalogModel, Channel, ChannelStatus


def get_channel_for_owner(request, public_id: str) -> Channel:
    """The owner's own channel, or 404 for anyone else's."""
    return get_object_or_404(Channel, public_id=public_id, owner=request.user)


def catalog(request):
    snap = routing.snapshot()
    available = {name for name, routes in snap.routes.items() if any(r.status == ChannelStatus.ACTIVE for r in routes)}
    models = CatalogModel.objects.prefetch_related("aliases").order_by("name")
    query = request.GET.get("q", "").strip()
    if query:
        models = models.filter(name__icontains=query) | models.filter(aliases__alias__icontains=query)
    rows = [{"model": m, "available": m.name in available} for m in models.distinct()]
    if request.GET.get("available"):
        rows = [row for row in rows if row["available"]]
    context = {"rows": rows, "query": query, "only_available": bool(request.GET.get("available"))}
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
            messages.success(request, f"Channel “{channel.name}” added. Test it to check the key works.")
            return redirect("channels:detail", public_id=channel.public_id)
    context = {"form": form, "channels": Channel.objects.for_owner(request.user).prefetch_related("keys")}
    return render(request, "channels_app/channels.html", context, status=400 if form.errors else 200)


@login_required
def channel_detail(request, public_id: str):
    channel = get_channel_for_owner(request, public_id)
    return render(request, "channels_app/channel_detail.html", {"channel": channel, "keys": channel.keys.all()})


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
        messages.success(request, f"“{channel.name}” paused: no calls go to it until you resume it.")
    else:
        try:
            channels.resume(channel)
        except channels.ChannelSuspended as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{channel.name}” resumed.")
    return redirect("channels:detail", public_id=public_id)
