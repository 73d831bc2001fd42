"""The one authentication backend: Django's model backend behind the log-in throttle.

Living in the backend, the throttle covers every caller of authenticate(): the site's log-in,
the admin's and any future one, so no form can forget it."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from . import throttle
from .models import User


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username or kwargs.get(User.USERNAME_FIELD) or ""
        address = throttle.client_address(request)
        if username and throttle.is_locked_out(username, address):
            raise PermissionDenied  # stops authenticate() before any password is checked
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if not username:
            return user
        if user is None:
            throttle.record_failure(username, address)
        else:
            throttle.clear_failures(username, address)
        return user
