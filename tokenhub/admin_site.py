"""The admin behind the site's own log-in, with two-factor sign-in required for staff.

The admin's own log-in form would take a password alone; here it sends people to the site's log-in,
which asks for the second factor (accounts/views.py). Staff without an authenticator are sent to
turn one on before any admin page opens.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse

from accounts import two_factor


class TokenHubAdminSite(admin.AdminSite):
    site_header = "TokenHub administration"

    def has_permission(self, request) -> bool:
        return super().has_permission(request) and two_factor.is_enabled(request.user)

    def login(self, request, extra_context=None):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not two_factor.is_enabled(user):
            messages.warning(request, "Staff must turn on two-factor sign-in before opening the admin.")
            return redirect("accounts:settings")
        if user.is_authenticated:  # signed in, but not staff: the site's log-in would send them back here
            raise PermissionDenied("The admin is for TokenHub's staff.")
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
