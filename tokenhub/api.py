"""The one NinjaAPI of the site (`/api/`): routers per app, one error shape, session or sk-hub key auth."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DomainValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from .lib import input_errors
from .lib.api_auth import MANAGE, KeyScopeError

DESCRIPTION = """Your account, keys, usage, statement and channels.

Authenticate with your session (browser, with CSRF) or an sk-hub key as `Authorization: Bearer sk-hub-…`.
A key has a scope:

- **relay** (the default): calls `/v1` and reads `GET /api/me`, `GET /api/usage`, `GET /api/balance` and
  `GET /api/statement`. Every other operation answers 403 with the error code `key_scope`.
- **manage**: everything a logged-in session may do (keys, channels, earnings, payouts, check-in, redeem).

Only a session or a manage key creates keys, and so a manage key. Keys of a deactivated user stop working.
"""

api = NinjaAPI(title="TokenHub API", version="1", urls_namespace="api", auth=MANAGE, description=DESCRIPTION)


def error(request, status: int, code: str, message: str, fields: dict | None = None):
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return api.create_response(request, body, status=status)


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    fields = {}
    for item in exc.errors:
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        fields[".".join(location) or "body"] = input_errors.message(item)
    return error(request, 422, "invalid_input", _("The request has invalid fields."), fields)


@api.exception_handler(DomainValidationError)
def on_domain_validation_error(request, exc: DomainValidationError):
    """A domain function refused the input (e.g. channels.validate): 422 naming each field, nothing saved."""
    fields = (
        {field: " ".join(messages) for field, messages in exc.message_dict.items()}
        if hasattr(exc, "error_dict")
        else {}
    )
    message = "; ".join(f"{field}: {text}" for field, text in fields.items()) or " ".join(exc.messages)
    return error(request, 422, "invalid_input", message, fields)


@api.exception_handler(AuthenticationError)
def on_authentication_error(request, exc):
    return error(request, 401, "unauthenticated", _("Log in, or send an sk-hub key as 'Authorization: Bearer …'."))


@api.exception_handler(KeyScopeError)
def on_key_scope(request, exc: KeyScopeError):
    return error(request, 403, "key_scope", str(exc.message))


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return error(request, 404, "not_found", _("No such object (or it is not yours)."))


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    return error(request, exc.status_code, "refused", str(exc))


from accounts.api import router as accounts_router  # noqa: E402
from billing.api import router as billing_router  # noqa: E402
from channels_app.api import router as channels_router  # noqa: E402

api.add_router("/", accounts_router)
api.add_router("/", billing_router)
api.add_router("/channels", channels_router)
