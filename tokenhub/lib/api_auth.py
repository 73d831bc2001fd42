"""Who may call which `/api` operation: a session, or an sk-hub key of the right scope.

Every operation is management-only (`MANAGE`, the API's default) unless it opts in to relay
keys with `auth=RELAY_READABLE`. That is an allow-list: a new endpoint is closed to relay keys
until someone decides otherwise (tests/ui/test_api_scopes.py walks every operation).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from ninja.security import HttpBearer, SessionAuth

from accounts import keys
from accounts.models import KeyScope, User


class KeyScopeError(Exception):
    """A usable key whose scope does not cover this operation (answered 403 key_scope)."""

    message = gettext_lazy(
        "This is a relay key: it may only call /v1 and read /api/me, /api/usage, /api/balance and "
        "/api/statement. Use a session (log in) or a manage key for account management."
    )


class HubKeyAuth(HttpBearer):
    """`Authorization: Bearer sk-hub-…` for scripts; the session (with CSRF) serves the browser."""

    def __init__(self, *scopes: str):
        super().__init__()
        self.scopes = frozenset(scopes)

    def authenticate(self, request, token: str):
        identity = keys.lookup(token)
        if identity is None or identity.refusal() is not None:
            return None
        user = User.objects.filter(pk=identity.user_id, is_active=True).first()
        if user is not None and identity.scope not in self.scopes:
            raise KeyScopeError()
        request.key_scope = identity.scope
        request.key_prefix = identity.prefix  # the audit log names the key a change was made with
        return user


class SessionUser(SessionAuth):
    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        return user if user and user.is_authenticated else None


# Account management: a session or a manage key. The API's default.
MANAGE = [HubKeyAuth(KeyScope.MANAGE), SessionUser()]
# Reading the account's own usage and balance: relay keys too.
RELAY_READABLE = [HubKeyAuth(KeyScope.MANAGE, KeyScope.RELAY), SessionUser()]
