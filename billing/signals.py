from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import ledger
from .models import TransactionKind


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def grant_signup_credit(sender, instance, created: bool, **kwargs) -> None:
    """Optional welcome credit (TOKENHUB_SIGNUP_GRANT_USD), once per user."""
    amount = settings.TOKENHUB_SIGNUP_GRANT_USD
    if created and amount > 0:
        ledger.grant(
            user_id=instance.pk,
            amount=amount,
            memo="Welcome credit",
            actor="system",
            kind=TransactionKind.GRANT,
            idempotency_key=f"signup:{instance.pk}",
        )
