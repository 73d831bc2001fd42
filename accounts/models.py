from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


class User(AbstractUser):
    """The site's user: a caller, a channel owner, or both."""

    email = models.EmailField("email address", blank=True)

    class Meta:
        db_table = "accounts_user"


class KeyScope(models.TextChoices):
    # relay: /v1 and reading the account's usage and balance; manage: the whole /api, like a session.
    RELAY = "relay", "Relay: call models, read usage and balance"
    MANAGE = "manage", "Manage: the whole account (keys, channels, payouts)"


def new_public_id() -> str:
    return secrets.token_urlsafe(9)


class ApiKeyQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def for_user(self, user):
        return self.filter(user=user)


class ApiKey(models.Model):
    """An sk-hub key. Only its SHA-256 hash and a display prefix are stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    public_id = models.CharField(max_length=16, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=20, help_text="The first characters of the key, for recognising it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=10, choices=KeyScope.choices, default=KeyScope.RELAY)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model names this key may call; empty means every model."
    )
    spend_cap_usd = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    # Maintained by billing.ledger in the same transaction as each charge.
    spent_usd = models.DecimalField(max_digits=20, decimal_places=8, default=0, editable=False)
    # The open holds of this key (calls in flight), maintained beside spent_usd in every hold and
    # settlement, so that a spend cap counts the calls still running: spent + reserved <= cap.
    reserved_usd = models.DecimalField(max_digits=20, decimal_places=8, default=0, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(spend_cap_usd__isnull=True) | Q(spend_cap_usd__gte=0), name="apikey_spend_cap_not_negative"
            ),
            models.CheckConstraint(condition=Q(spent_usd__gte=0), name="apikey_spent_not_negative"),
            models.CheckConstraint(condition=Q(reserved_usd__gte=0), name="apikey_reserved_not_negative"),
            models.CheckConstraint(condition=Q(scope__in=KeyScope.values), name="apikey_scope_known"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"
