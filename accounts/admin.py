from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.utils.translation import gettext_lazy, ngettext
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tokenhub.lib.admin import ReadOnlyAdmin

from . import audit, keys
from .models import ApiKey, AuditEntry, Notification, User

# django-otp's own device admins would show TOTP seeds and recovery codes and delete devices unaudited:
# staff reset a lost second factor with the audited action on users (or manage.py reset_two_factor).
for device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(device_model):
        admin.site.unregister(device_model)


class AuditedChanges:
    """A ModelAdmin mixin: staff's edits on the change form are audited like the owners' own (before →
    after of the changed fields), in the save's transaction."""

    audit_action = ""

    def audit_described(self, obj) -> dict:
        raise NotImplementedError

    def audit_owner_and_target(self, obj) -> tuple[int | None, str]:
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        before = self.audit_described(type(obj).objects.get(pk=obj.pk)) if change else {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            old, new = audit.changes(before, self.audit_described(obj))
            if change and new:
                owner_id, target = self.audit_owner_and_target(obj)
                audit.record(self.audit_action, owner_id=owner_id, target=target, before=old, after=new)


@admin.register(User)
class UserAdmin(AuditedChanges, DjangoUserAdmin):
    list_display = ("username", "email", "email_verified", "is_staff", "is_active", "date_joined", "last_login")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            gettext_lazy("Alerts, notifications and payments"),
            {"fields": ("verified_email", "low_balance_alert_usd", "notifications_off", "payment_hold")},
        ),
    )
    readonly_fields = ("verified_email", "payment_hold")
    list_filter = (*DjangoUserAdmin.list_filter, "payment_hold")
    actions = ["reset_two_factor"]
    audit_action = "account.edited_by_staff"

    def audit_described(self, obj) -> dict:
        return {field: getattr(obj, field) for field in ("email", "is_active", "is_staff", "is_superuser")}

    def audit_owner_and_target(self, obj) -> tuple[int | None, str]:
        return obj.pk, f"user:{obj.pk}"

    @admin.action(description=gettext_lazy("Reset two-factor sign-in (a lost phone: check who asks first)"))
    def reset_two_factor(self, request, queryset):
        done = sum(audit.two_factor_reset(user) for user in queryset)
        self.message_user(
            request,
            ngettext(
                "Reset two-factor sign-in of %(count)d user.", "Reset two-factor sign-in of %(count)d users.", done
            )
            % {"count": done},
            messages.SUCCESS,
        )

    @admin.display(boolean=True, description=gettext_lazy("e-mail verified"))
    def email_verified(self, user) -> bool:
        return user.email_verified


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: entries are written by the changes they describe, never by hand."""

    list_display = ("created_at", "actor_label", "via", "ip", "action", "target", "owner")
    list_filter = ("via", "action")
    search_fields = ("actor_label", "target", "owner__username", "ip")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "subject", "sent")
    list_filter = ("kind", "sent")
    search_fields = ("user__username", "subject")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedChanges, admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "status", "created_at", "last_used_at", "expires_at", "spent_usd")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username", "public_id")
    readonly_fields = ("public_id", "prefix", "created_at", "last_used_at", "revoked_at", "spent_usd", "reserved_usd")
    exclude = ("key_hash",)
    actions = ["revoke_keys"]
    audit_action = "key.edited"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead (audited); a key's calls keep pointing at it

    def audit_described(self, obj) -> dict:
        return keys.described(obj)

    def audit_owner_and_target(self, obj) -> tuple[int | None, str]:
        return obj.user_id, f"key:{obj.public_id}"

    def has_add_permission(self, request) -> bool:
        # A key is shown once to its creator; admins create none on a user's behalf here.
        return False

    @admin.action(description=gettext_lazy("Revoke selected keys"))
    def revoke_keys(self, request, queryset):
        revoked = sum(keys.revoke_key(key) for key in queryset)
        self.message_user(
            request,
            ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked) % {"count": revoked},
            messages.SUCCESS,
        )
