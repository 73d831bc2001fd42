from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from . import keys
from .forms import ThrottledAdminAuthenticationForm
from .models import ApiKey, User

# The admin's log-in shows the same lock-out as the site's (the backend enforces it for both).
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "date_joined", "last_login")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "status", "created_at", "last_used_at", "expires_at", "spent_usd")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username", "public_id")
    readonly_fields = ("public_id", "prefix", "created_at", "last_used_at", "revoked_at", "spent_usd", "reserved_usd")
    exclude = ("key_hash",)
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        # A key is shown once to its creator; admins create none on a user's behalf here.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        revoked = sum(keys.revoke_key(key) for key in queryset)
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)
