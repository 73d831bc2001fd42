from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils.translation import gettext as _

from . import notifications, throttle, verification
from .models import User


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def deliver_notification(
    user_id: int, kind: str, key: str, subject: str, body: str, params=None, repeat_seconds=None
) -> str:
    """One notification (accounts/notifications.py); a mail server that is down is tried again later."""
    return notifications.deliver(user_id, kind, key, subject, body, params, repeat_seconds)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_verification_link(user_id: int, origin: str) -> bool:
    user = User.objects.filter(pk=user_id, is_active=True).exclude(email="").first()
    if user is None or user.email_verified:
        return False
    # Per address too, sign-ups' links included: many accounts must not flood one stranger's inbox.
    if throttle.retry_after("verification-email", user.email, settings.EMAIL_VERIFICATION_RATE_LIMIT) is not None:
        return False
    link = origin + reverse("accounts:verify_email", args=[verification.token_for(user)])
    site = settings.TOKENHUB_SITE_NAME
    # No username in it: a name is the sign-up's choice, and this goes to an address not yet proven.
    with notifications.in_their_language(user):
        body = _(
            "Someone asked to use this address for a %(site)s account. If it was you, follow this link to "
            "verify it (it works for three days):\n\n%(link)s\n\nIf it was not, ignore this message."
        ) % {"site": site, "link": link}
        subject = _("Verify your e-mail address for %(site)s") % {"site": site}
    send_mail(subject, body, None, [user.email])
    return True
