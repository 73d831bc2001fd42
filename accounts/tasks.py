from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from . import notifications, verification
from .models import User


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def deliver_notification(user_id: int, kind: str, key: str, subject: str, body: str, repeat_seconds=None) -> str:
    """One notification (accounts/notifications.py); a mail server that is down is tried again later."""
    return notifications.deliver(user_id, kind, key, subject, body, repeat_seconds)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_verification_link(user_id: int, origin: str) -> bool:
    user = User.objects.filter(pk=user_id, is_active=True).exclude(email="").first()
    if user is None or user.email_verified:
        return False
    link = origin + reverse("accounts:verify_email", args=[verification.token_for(user)])
    body = (
        f"Hello {user.username},\n\nfollow this link to verify the address on your {settings.TOKENHUB_SITE_NAME} "
        f"account (it works for three days):\n\n{link}\n\nIf you did not ask for it, ignore this message."
    )
    send_mail(f"Verify your e-mail address for {settings.TOKENHUB_SITE_NAME}", body, None, [user.email])
    return True
