"""The audit log: every change to money, channels, keys and sign-in settings, who made it and from where.

The domain functions that make a change call `record()` inside the change's own transaction; who
acted comes from the context the change runs in, set once at each way in:

- a request (web pages, the JSON API, the admin): `tokenhub.middleware.AuditOrigin` keeps the request,
  and the signed-in user and client address are read from it only when an entry is written;
- a `manage.py` command: `tokenhub.lib.commands.OperatorCommand` names the command and the OS user;
- a Celery task: `tokenhub.celery` names the task;
- anything else (the relay pausing a channel, a shell): "system".

So the functions that change things take no `actor` argument and no caller can forget to pass one.
"""

from __future__ import annotations

import contextlib
import getpass
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tokenhub.lib.money import plain

from .models import AuditEntry
from .throttle import client_address

# Fields never written as they are (the audited functions pass counts or descriptions, not these).
SECRET_FIELDS = frozenset({"key", "key_hash", "password", "secret", "token", "invitation_token"})


@dataclass(frozen=True)
class Origin:
    label: str
    via: str
    actor_id: int | None = None
    ip: str | None = None


SYSTEM = Origin(label="system", via="system")
_request: ContextVar = ContextVar("audit_request", default=None)
_origin: ContextVar[Origin | None] = ContextVar("audit_origin", default=None)


@contextlib.contextmanager
def from_request(request):
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


@contextlib.contextmanager
def acting_as(origin: Origin):
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


def set_origin(origin: Origin):
    """`acting_as` for code that cannot use a with-block (Celery's task signals); returns the token."""
    return _origin.set(origin)


def reset_origin(token) -> None:
    _origin.reset(token)


def command_origin(command_name: str) -> Origin:
    return Origin(label=f"cli:{_os_user()} (manage.py {command_name})"[:120], via="cli")


def task_origin(task_name: str) -> Origin:
    return Origin(label=f"task:{task_name}"[:120], via="task")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return "unknown"


def current_origin() -> Origin:
    origin = _origin.get()
    if origin is not None:
        return origin
    request = _request.get()
    if request is None:
        return SYSTEM
    user = getattr(request, "user", None)
    path = request.path_info
    via = "admin" if path.startswith("/admin/") else "api" if path.startswith("/api/") else "web"
    ip = client_address(request) or None
    if user is not None and user.is_authenticated:
        return Origin(label=user.get_username(), via=via, actor_id=user.pk, ip=ip)
    by_key = getattr(request, "auth", None)  # the JSON API with an sk-hub key: django-ninja's request.auth
    if by_key is not None and getattr(by_key, "is_authenticated", False):
        label = f"{by_key.get_username()} (key {getattr(request, 'key_prefix', '') or 'sk-hub-'}…)"
        return Origin(label=label, via=via, actor_id=by_key.pk, ip=ip)
    return Origin(label="anonymous", via=via, ip=ip)


def actor_label() -> str:
    """Who is acting, for the ledger's `Transaction.actor` column: admin:<name>, cli:<os user>, ..."""
    origin = current_origin()
    if origin.actor_id is not None:
        return f"{'admin' if origin.via == 'admin' else 'user'}:{origin.label}"[:120]
    return origin.label.split(" (", 1)[0]


def redacted(values: dict | None) -> dict | None:
    """As stored: secrets replaced, amounts as 8-decimal strings (the ledger's own figures)."""
    if values is None:
        return None
    return {name: "(replaced)" if name in SECRET_FIELDS else _stored(value) for name, value in values.items()}


def _stored(value):
    return plain(value) if isinstance(value, Decimal) else value


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """Only what changed, on both sides."""
    names = [name for name in after if before.get(name) != after.get(name)]
    return {name: before.get(name) for name in names}, {name: after.get(name) for name in names}


def record(action: str, *, owner_id: int | None, target: str = "", before=None, after=None) -> AuditEntry:
    """Write an entry for a change made in the current transaction (call it inside that transaction)."""
    origin = current_origin()
    return AuditEntry.objects.create(
        actor_id=origin.actor_id,
        actor_label=origin.label[:120],
        via=origin.via,
        ip=origin.ip,
        owner_id=owner_id,
        action=action,
        target=target[:80],
        before=redacted(before),
        after=redacted(after),
    )


def entries_for(user_id: int):
    return AuditEntry.objects.filter(owner_id=user_id).select_related("actor")


def two_factor_reset(user) -> bool:
    """An operator's or staff's reset of a user's lost second factor (audited); False if there was none."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=user).delete()[0] + StaticDevice.objects.filter(user=user).delete()[0]
        if removed:
            record("security.2fa_reset", owner_id=user.pk, target=f"user:{user.pk}")
    return bool(removed)


ACTION_LABELS = {
    "key.created": gettext_lazy("API key created"),
    "key.revoked": gettext_lazy("API key revoked"),
    "key.edited": gettext_lazy("API key edited by staff"),
    "channel.created": gettext_lazy("Channel added"),
    "channel.edited": gettext_lazy("Channel edited"),
    "channel.keys_replaced": gettext_lazy("Channel upstream keys replaced"),
    "channel.paused": gettext_lazy("Channel paused"),
    "channel.resumed": gettext_lazy("Channel resumed"),
    "channel.suspended": gettext_lazy("Channel suspended by staff"),
    "channel.approved": gettext_lazy("Channel approved by staff"),
    "channel.auto_disabled": gettext_lazy("Channel disabled after failures"),
    "channel.re_enabled": gettext_lazy("Channel enabled again after a passing test"),
    "channel.paused_low_balance": gettext_lazy("Channel paused: upstream balance low"),
    "channel.paused_for_excess": gettext_lazy("Channel paused: usage above its holds"),
    "channel.limits": gettext_lazy("Channel spend limits changed"),
    "channel.visibility": gettext_lazy("Channel visibility changed"),
    "channel.shared": gettext_lazy("Channel shared with a user"),
    "channel.unshared": gettext_lazy("Channel no longer shared with a user"),
    "channel.invitation": gettext_lazy("Channel invitation link changed"),
    "money.grant": gettext_lazy("Balance granted"),
    "money.adjust": gettext_lazy("Balance adjusted"),
    "money.earnings_moved": gettext_lazy("Earnings moved to balance"),
    "payout.requested": gettext_lazy("Payout requested"),
    "payout.paid": gettext_lazy("Payout paid"),
    "payout.rejected": gettext_lazy("Payout rejected"),
    "codes.batch": gettext_lazy("Redemption codes issued"),
    "codes.exported": gettext_lazy("Redemption codes exported"),
    "account.edited_by_staff": gettext_lazy("Account changed by staff"),
    "security.2fa_enabled": gettext_lazy("Two-factor sign-in turned on"),
    "security.2fa_disabled": gettext_lazy("Two-factor sign-in turned off"),
    "security.recovery_codes": gettext_lazy("New recovery codes made"),
    "security.email_verified": gettext_lazy("E-mail address verified"),
    "account.notifications": gettext_lazy("Notification settings changed"),
    "account.email_changed": gettext_lazy("E-mail address changed"),
    "account.settings": gettext_lazy("Alert and notification settings changed"),
    "security.2fa_reset": gettext_lazy("Two-factor sign-in reset by an operator"),
    "account.low_balance": gettext_lazy("Low-balance alert changed"),
}


def shown_to_owner(entry: AuditEntry) -> tuple[str, str]:
    """(who, from where) as the entry's owner sees it: their own actions with their address; staff and
    operators as TokenHub, without their names or addresses; another user (one who joined a channel by its
    link) by name, without theirs. The admin shows everything."""
    if entry.actor_id is not None and entry.actor_id == entry.owner_id:
        return entry.actor_label, f"{entry.via} · {entry.ip}" if entry.ip else entry.via
    if entry.actor_id is None:
        return (_("TokenHub operator") if entry.via == "cli" else _("TokenHub (automatic)")), entry.via
    if entry.actor.is_staff:
        return _("TokenHub staff"), entry.via
    return entry.actor.get_username(), entry.via


def change_text(entry: AuditEntry) -> str:
    """before → after, field by field, for people: "status: active → paused; weight: 1 → 5"."""
    before, after = entry.before or {}, entry.after or {}
    parts = []
    for name in dict.fromkeys([*before, *after]):
        if name in before and name in after:
            parts.append(f"{name}: {_shown(before[name])} → {_shown(after[name])}")
        elif name in after:
            parts.append(f"{name}: {_shown(after[name])}")
        else:
            parts.append(f"{name}: {_shown(before[name])} → {_('(none)')}")
    return "; ".join(parts)


def _shown(value) -> str:
    if value in (None, "", [], {}):
        return _("(none)")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
