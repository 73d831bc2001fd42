from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """The site's user: a caller, a channel owner, or both."""

    email = models.EmailField(_("email address"), blank=True)
    # The address a verification link was followed for: a changed address is unverified again.
    verified_email = models.EmailField(verbose_name=_("verified email"), blank=True, editable=False)
    low_balance_alert_usd = models.DecimalField(
        _("low-balance alert (USD)"),
        max_digits=20,
        decimal_places=8,
        null=True,
        blank=True,
        help_text=_("Warn me (on the dashboard, and by e-mail if switched on) when my balance falls below this."),
    )
    # Notification kinds (accounts/notifications.py) the user switched off; every other kind is sent.
    notifications_off = models.JSONField(verbose_name=_("notifications off"), default=list, blank=True)
    # The site's language for this user (empty: the browser's); also the language of their e-mail.
    language = models.CharField(verbose_name=_("language"), max_length=10, blank=True, choices=settings.LANGUAGES)
    # Part of the session hash: raised when two-factor sign-in is turned on or off, which ends the
    # user's other sessions (accounts/two_factor.py).
    security_stamp = models.PositiveIntegerField(verbose_name=_("security stamp"), default=0, editable=False)
    # Set while a refunded or charged-back top-up's credit was already spent (billing/payments/orders.py):
    # the account's keys stop until the shortfall is paid or staff waive it.
    payment_hold = models.BooleanField(verbose_name=_("on payment hold"), default=False, editable=False)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        db_table = "accounts_user"
        constraints = [
            models.CheckConstraint(
                condition=Q(low_balance_alert_usd__isnull=True) | Q(low_balance_alert_usd__gte=0),
                name="user_low_balance_alert_not_negative",
            ),
            # One mailbox verifies one account: check-in rewards are not farmed with one address.
            models.UniqueConstraint(
                Lower("verified_email"), condition=~Q(verified_email=""), name="one_account_per_verified_email"
            ),
        ]

    @property
    def email_verified(self) -> bool:
        return bool(self.email) and self.verified_email == self.email

    def get_session_auth_hash(self):
        return self._stamped_session_hash(super().get_session_auth_hash())

    def get_session_auth_fallback_hash(self):
        for fallback in super().get_session_auth_fallback_hash():
            yield self._stamped_session_hash(fallback)

    def _stamped_session_hash(self, password_hash: str) -> str:
        # Django's hash (of the password) as it is until the stamp first moves: no session ends on upgrade.
        if not self.security_stamp:
            return password_hash
        stamped = f"{password_hash}|{self.security_stamp}"
        return salted_hmac("accounts.User.security_stamp", stamped, algorithm="sha256").hexdigest()


class KeyScope(models.TextChoices):
    # relay: /v1 and reading the account's usage and balance; manage: the whole /api, like a session.
    RELAY = "relay", _("Relay: call models, read usage and balance")
    MANAGE = "manage", _("Manage: the whole account (keys, channels, payouts)")


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

    user = models.ForeignKey(User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="api_keys")
    public_id = models.CharField(
        verbose_name=_("public ID"), max_length=16, unique=True, default=new_public_id, editable=False
    )
    name = models.CharField(verbose_name=_("name"), max_length=100)
    prefix = models.CharField(
        verbose_name=_("prefix"), max_length=20, help_text=_("The first characters of the key, for recognising it.")
    )
    key_hash = models.CharField(verbose_name=_("key hash"), max_length=64, unique=True, editable=False)
    scope = models.CharField(verbose_name=_("scope"), max_length=10, choices=KeyScope.choices, default=KeyScope.RELAY)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(verbose_name=_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(verbose_name=_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(verbose_name=_("last used at"), null=True, blank=True)
    allowed_models = models.JSONField(
        verbose_name=_("allowed models"),
        default=list,
        blank=True,
        help_text=_("Model names this key may call; empty means every model."),
    )
    spend_cap_usd = models.DecimalField(
        verbose_name=_("spend cap USD"), max_digits=20, decimal_places=8, null=True, blank=True
    )
    # Maintained by billing.ledger in the same transaction as each charge.
    spent_usd = models.DecimalField(
        verbose_name=_("spent USD"), max_digits=20, decimal_places=8, default=0, editable=False
    )
    # The open holds of this key (calls in flight), maintained beside spent_usd in every hold and
    # settlement, so that a spend cap counts the calls still running: spent + reserved <= cap.
    reserved_usd = models.DecimalField(
        verbose_name=_("reserved USD"), max_digits=20, decimal_places=8, default=0, editable=False
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
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


class AuditEntry(models.Model):
    """One change to money, a channel, a key or a sign-in setting: who, when, from where, before → after.

    Append-only: written in the same database transaction as the change it describes (a change rolled
    back leaves no entry), never updated or deleted (on PostgreSQL a trigger refuses both). Values
    never hold a secret: a replaced upstream key is recorded as replaced, with its count.
    """

    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, db_index=True, editable=False)
    # Who acted: a signed-in user (actor), or an operator's command, a Celery task, the relay itself.
    actor = models.ForeignKey(
        User,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_actions",
        editable=False,
    )
    actor_label = models.CharField(verbose_name=_("actor label"), max_length=120, editable=False)
    via = models.CharField(verbose_name=_("via"), max_length=10, editable=False)  # web, api, admin, cli, task, relay
    ip = models.GenericIPAddressField(verbose_name=_("IP"), null=True, blank=True, editable=False)
    # Whose entry it is: the owner of what changed, who sees it on their own pages.
    owner = models.ForeignKey(
        User,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        editable=False,
    )
    action = models.CharField(verbose_name=_("action"), max_length=40, db_index=True, editable=False)
    # "channel:<public id>", "key:…"
    target = models.CharField(verbose_name=_("target"), max_length=80, blank=True, editable=False)
    before = models.JSONField(
        verbose_name=_("before"), null=True, blank=True, editable=False, encoder=DjangoJSONEncoder
    )
    after = models.JSONField(verbose_name=_("after"), null=True, blank=True, editable=False, encoder=DjangoJSONEncoder)

    class Meta:
        verbose_name = _("audit entry")
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("audit entries")
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["target", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target}"


class Notification(models.Model):
    """An e-mail TokenHub sent a user (or failed to): what the settings page lists as recent."""

    user = models.ForeignKey(User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(verbose_name=_("kind"), max_length=20)
    subject = models.CharField(verbose_name=_("subject"), max_length=200)
    sent = models.BooleanField(verbose_name=_("sent"), default=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.user_id}: {self.subject}"
