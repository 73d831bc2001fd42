"""E-mail notifications: what happened to a user's channels, payouts and balance, sent by Celery.

`send()` queues a message once the current transaction commits (a change rolled back tells nobody);
the Celery task `accounts.tasks.deliver_notification` sends it through Django's mail framework, unless

- the user switched that kind off on their settings page, or has no verified address (mail goes
  only to an address its owner proved they read: nobody can make TokenHub mail a stranger), or
- the same thing was told within TOKENHUB_NOTIFY_REPEAT_SECONDS (one key per event: a channel
  paused for the same reason, a period's spend limit), or the user already had
  TOKENHUB_NOTIFY_HOURLY_LIMIT messages this hour.

The repeat key is taken atomically in the cache before sending (two workers telling the same thing
send once) and given back if the mail server fails, for Celery's retry.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import throttle
from .models import Notification, User

logger = logging.getLogger(__name__)

KINDS = {
    "channel_stopped": gettext_lazy("A channel of mine is disabled, paused or suspended by TokenHub"),
    "spend_limit": gettext_lazy("A channel of mine reached its daily or monthly spend limit"),
    "payout": gettext_lazy("A payout I requested is approved or rejected"),
    "low_balance": gettext_lazy("My balance falls below my low-balance alert"),
    "payment": gettext_lazy("A payment of mine is confirmed (the receipt), refunded or charged back"),
}


class Outcome:
    SENT, OFF, UNVERIFIED, REPEAT, HOURLY, INACTIVE, FAILED = (
        "sent",
        "switched off",
        "no verified address",
        "told recently",
        "hourly limit",
        "inactive user",
        "failed",
    )


def send(
    user_id: int, kind: str, key: str, subject: str, body: str, params: dict | None = None, repeat_seconds=None
) -> None:
    """Queue a notification after the current transaction commits (at once outside one).

    `subject` and `body` are the English texts, marked with gettext_noop where they are written; they are
    translated into the recipient's language when the mail is made, then filled with `params`."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind}")
    from .tasks import deliver_notification

    transaction.on_commit(
        lambda: deliver_notification.delay(user_id, kind, key, subject, body, params or {}, repeat_seconds)
    )


def in_their_language(user: User):
    """Mail speaks the recipient's language: their own choice, else the site's default."""
    return translation.override(user.language or settings.LANGUAGE_CODE)


def deliver(
    user_id: int, kind: str, key: str, subject: str, body: str, params: dict | None = None, repeat_seconds=None
) -> str:
    """Send it now (in a Celery task), unless one of the module's rules says not to; says what happened."""
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return Outcome.INACTIVE
    if kind in (user.notifications_off or []):
        return Outcome.OFF
    if not user.email_verified:
        return Outcome.UNVERIFIED
    repeat_key = f"notify:{user_id}:{kind}:{key}"[:200]
    if not cache.add(repeat_key, 1, timeout=repeat_seconds or settings.TOKENHUB_NOTIFY_REPEAT_SECONDS):
        return Outcome.REPEAT
    if throttle.retry_after("notify", str(user_id), settings.TOKENHUB_NOTIFY_HOURLY_LIMIT) is not None:
        return Outcome.HOURLY
    page = settings.TOKENHUB_PUBLIC_URL + reverse("accounts:settings")
    with in_their_language(user):
        subject = (_(subject) % (params or {}))[:200]
        footer = _("Switch these messages off on your settings page: %(page)s") % {"page": page}
        body = f"{_(body) % (params or {})}\n\n—\n{footer}"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    except Exception:
        cache.delete(repeat_key)  # Celery's retry may try again
        Notification.objects.create(user=user, kind=kind, subject=subject, sent=False)
        logger.warning("notification %s to user %s failed", kind, user_id, exc_info=True)
        raise
    Notification.objects.create(user=user, kind=kind, subject=subject)
    return Outcome.SENT


def recent(user, limit: int = 10):
    return Notification.objects.filter(user=user)[:limit]
