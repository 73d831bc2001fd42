from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy, ngettext

from accounts.admin import AuditedChanges
from tokenhub.lib.admin import ReadOnlyAdmin

from . import channels, checks
from .models import CatalogModel, Channel, ChannelKey, ChannelShare, ChannelStatus, ModelAlias


class AliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 1


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "mode", "input_price", "output_price", "cache_read_price", "context_window")
    list_filter = ("provider", "mode")
    search_fields = ("name", "display_name", "aliases__alias")
    inlines = [AliasInline]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ("alias", "model")
    search_fields = ("alias", "model__name")
    autocomplete_fields = ("model",)


class ChannelKeyInline(admin.TabularInline):
    """Only the masked tail of each upstream key is ever shown."""

    model = ChannelKey
    fields = ("position", "masked", "key_id")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ChannelShareInline(admin.TabularInline):
    """Who a private channel is shared with: the owner's to manage (audited there), shown here."""

    model = ChannelShare
    fields = ("user", "via", "created_at")
    readonly_fields = ("user", "via", "created_at")
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(AuditedChanges, admin.ModelAdmin):
    list_display = (
        "public_id",
        "name",
        "owner",
        "provider",
        "status",
        "priority",
        "weight",
        "approved_at",
        "owner_cut",
        "visibility",
        "daily_spend_limit_usd",
        "monthly_spend_limit_usd",
        "last_test_ok",
        "last_test_latency_ms",
        "balance_usd",
    )
    list_filter = ("status", "provider", "visibility", ("approved_at", admin.EmptyFieldListFilter))
    search_fields = ("public_id", "name", "owner__username", "base_url")
    readonly_fields = (
        "public_id",
        "last_test_at",
        "last_test_ok",
        "last_test_latency_ms",
        "last_test_message",
        "balance_usd",
        "balance_status",
        "balance_checked_at",
        "status_changed_at",
    )
    inlines = [ChannelKeyInline, ChannelShareInline]
    actions = ["test", "approve", "disable", "enable", "reencrypt"]
    audit_action = "channel.edited"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # staff suspend a channel (audited); its records and earnings must keep their channel

    def audit_described(self, obj) -> dict:
        return channels.described(obj)

    def audit_owner_and_target(self, obj) -> tuple[int | None, str]:
        return obj.owner_id, channels.target(obj)

    @admin.action(description=gettext_lazy("Test selected channels (one minimal real call each)"))
    def test(self, request, queryset):
        for channel in queryset:
            result = checks.test_channel(channel)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{channel.public_id} {channel.name}: {result.message}", level)

    @admin.action(description=gettext_lazy("Approve selected channels (end their probation)"))
    def approve(self, request, queryset):
        for channel in queryset:
            channels.approve(channel)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("Approved %(count)d channel.", "Approved %(count)d channels.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Suspend selected channels (only staff can lift it)"))
    def disable(self, request, queryset):
        for channel in queryset:
            channels.suspend(channel, by=request.user.username)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("Suspended %(count)d channel.", "Suspended %(count)d channels.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Enable selected channels (lifts a suspension)"))
    def enable(self, request, queryset):
        for channel in queryset:
            channels.set_status(channel, ChannelStatus.ACTIVE, "", action="channel.resumed")
        count = queryset.count()
        self.message_user(
            request,
            ngettext("Enabled %(count)d channel.", "Enabled %(count)d channels.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Re-encrypt all upstream keys under the current encryption key"))
    def reencrypt(self, request, queryset):
        count = channels.rotate_encryption()
        self.message_user(
            request,
            ngettext("Re-encrypted %(count)d key.", "Re-encrypted %(count)d keys.", count) % {"count": count},
            messages.SUCCESS,
        )


@admin.register(ChannelShare)
class ChannelShareAdmin(ReadOnlyAdmin):
    """Read-only: shares are the owner's (channels_app/sharing.py, audited)."""

    list_display = ("channel", "user", "via", "created_at")
    list_filter = ("via",)
    search_fields = ("channel__public_id", "channel__name", "user__username")
