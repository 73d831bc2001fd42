"""The admin behind the site's own log-in, with two-factor sign-in required for staff.

The admin's own log-in form would take a password alone; here it sends people to the site's log-in,
which asks for the second factor (accounts/views.py). Staff without an authenticator are sent to
turn one on before any admin page opens.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import two_factor


class TokenHubAdminSite(admin.AdminSite):
    site_header = gettext_lazy("TokenHub administration")
    site_title = gettext_lazy("TokenHub admin")
    index_title = gettext_lazy("Site administration")

    def has_permission(self, request) -> bool:
        # This session must have shown the code: a password-only session from before it was on does not do.
        return super().has_permission(request) and two_factor.session_verified(request)

    def login(self, request, extra_context=None):
        user = request.user
        next_url = request.GET.get("next") or reverse("admin:index")
        if user.is_authenticated and user.is_active and user.is_staff:
            if not two_factor.is_enabled(user):
                messages.warning(request, _("Staff must turn on two-factor sign-in before opening the admin."))
                return redirect("accounts:settings")
            if not two_factor.session_verified(request):
                logout(request)  # signed in with the password alone: again, with the code this time
                messages.warning(request, _("Sign in again with your two-factor code to open the admin."))
                return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
            return redirect(
                next_url if url_has_allowed_host_and_scheme(next_url, {request.get_host()}) else "admin:index"
            )
        if user.is_authenticated:  # signed in, but not staff: the site's log-in would send them back here
            raise PermissionDenied("The admin is for TokenHub's staff.")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
