from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import providers
from .owner_input import (
    PRIORITY_RANGE,
    WEIGHT_RANGE,
    validate_model_mapping,
    validate_model_names,
    validate_text,
)
from .urlcheck import UnsafeUpstream, validate_base_url

PRICE = {"max_digits": 20, "decimal_places": 8}


CAPABILITIES = {
    "vision": _("images in"),
    "tools": _("tool calls"),
    "reasoning": _("reasoning"),
    "caching": _("prompt caching"),
    "embedding": _("embeddings"),
}


class CatalogModel(models.Model):
    """A canonical model with its prices (USD per 1M tokens)."""

    name = models.CharField(verbose_name=_("name"), max_length=200, unique=True)
    provider = models.CharField(
        verbose_name=_("provider"), max_length=40, blank=True, help_text=_("Who makes it (informational).")
    )
    display_name = models.CharField(verbose_name=_("display name"), max_length=200, blank=True)
    mode = models.CharField(
        verbose_name=_("mode"), max_length=20, default="chat", choices=[("chat", "chat"), ("embedding", "embedding")]
    )
    context_window = models.PositiveIntegerField(verbose_name=_("context window"), null=True, blank=True)
    default_output_tokens = models.PositiveIntegerField(verbose_name=_("default output tokens"), default=4096)
    max_output_tokens = models.PositiveIntegerField(verbose_name=_("max output tokens"), null=True, blank=True)
    input_price = models.DecimalField(verbose_name=_("input price"), **PRICE, null=True, blank=True)
    output_price = models.DecimalField(verbose_name=_("output price"), **PRICE, null=True, blank=True)
    cache_read_price = models.DecimalField(verbose_name=_("cache read price"), **PRICE, null=True, blank=True)
    cache_write_price = models.DecimalField(verbose_name=_("cache write price"), **PRICE, null=True, blank=True)
    reasoning_price = models.DecimalField(verbose_name=_("reasoning price"), **PRICE, null=True, blank=True)
    # What the model can do besides text in and out, for the models page's filter (CAPABILITIES).
    capabilities = models.JSONField(verbose_name=_("capabilities"), default=list, blank=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    class Meta:
        verbose_name_plural = _("models")
        ordering = ["name"]
        verbose_name = _("model")
        constraints = [
            models.CheckConstraint(
                condition=Q(input_price__isnull=True) | Q(input_price__gte=0), name="input_price_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(output_price__isnull=True) | Q(output_price__gte=0), name="output_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def all_capabilities(self) -> list[str]:
        """The catalog's capabilities, with those its prices imply (a cached-input or reasoning price)."""
        found = set(self.capabilities or [])
        if self.cache_read_price is not None:
            found.add("caching")
        if self.reasoning_price is not None:
            found.add("reasoning")
        if self.mode == "embedding":
            found.add("embedding")
        return [name for name in CAPABILITIES if name in found]

    @property
    def priced(self) -> bool:
        return self.input_price is not None and self.output_price is not None

    def clean(self) -> None:
        clash = ModelAlias.objects.filter(alias=self.name).select_related("model").first()
        if clash is not None:
            raise ValidationError({"name": f'"{self.name}" is already an alias of "{clash.model.name}".'})


class ModelAlias(models.Model):
    """Another name for a canonical model (`deepseek/deepseek-chat` for `deepseek-chat`)."""

    alias = models.CharField(verbose_name=_("alias"), max_length=200, unique=True)
    model = models.ForeignKey(CatalogModel, verbose_name=_("model"), on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        verbose_name = _("model alias")
        ordering = ["alias"]
        verbose_name_plural = _("model aliases")

    def __str__(self) -> str:
        return f"{self.alias} → {self.model.name}"

    def clean(self) -> None:
        self.alias = self.alias.strip()
        if CatalogModel.objects.filter(name=self.alias).exists():
            raise ValidationError({"alias": f'"{self.alias}" is a model name of its own, not an alias.'})
        other = ModelAlias.objects.filter(alias=self.alias).exclude(pk=self.pk).select_related("model").first()
        if other is not None:
            raise ValidationError({"alias": f'"{self.alias}" already points to "{other.model.name}".'})


def validate_upstream_url(url: str) -> None:
    """The SSRF guard as a field validator, for the admin's form."""
    try:
        validate_base_url(url)
    except UnsafeUpstream as exc:
        raise ValidationError(str(exc), code="unsafe_upstream") from None


def new_channel_id() -> str:
    return "ch_" + secrets.token_urlsafe(8)


# The start of the status reason a low upstream balance pauses a channel with (channels_app.checks).
LOW_BALANCE_REASON = "upstream balance"


class ChannelStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused by owner")
    AUTO_DISABLED = "auto_disabled", _("Auto-disabled")
    SUSPENDED = "suspended", _("Suspended by staff")  # only staff lift it


class Visibility(models.TextChoices):
    PUBLIC = "public", _("Public: every TokenHub user's calls may use it")
    PRIVATE = "private", _("Private: only the users it is shared with")


class ChannelQuerySet(models.QuerySet):
    def for_owner(self, user):
        return self.filter(owner=user)


class Channel(models.Model):
    """An owner's upstream account: where calls for its models can go."""

    public_id = models.CharField(
        verbose_name=_("public ID"), max_length=20, unique=True, default=new_channel_id, editable=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("owner"), on_delete=models.PROTECT, related_name="channels"
    )
    name = models.CharField(verbose_name=_("name"), max_length=100, validators=[validate_text])
    provider = models.CharField(verbose_name=_("provider"), max_length=24, choices=providers.choices)
    base_url = models.URLField(verbose_name=_("base URL"), max_length=300, validators=[validate_upstream_url])
    model_names = models.JSONField(
        verbose_name=_("model names"),
        default=list,
        validators=[validate_model_names],
        help_text=_("Model names (canonical or alias) this channel serves."),
    )
    model_mapping = models.JSONField(
        verbose_name=_("model mapping"),
        default=dict,
        blank=True,
        validators=[validate_model_mapping],
        help_text=_('Optional {"name callers use": "name the upstream expects"}.'),
    )
    owner_cut = models.DecimalField(
        verbose_name=_("owner cut"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.5"))],
        help_text=_("The owner's share of each call, 0 to 0.5 (50 %)."),
    )
    priority = models.IntegerField(
        verbose_name=_("priority"),
        default=0,
        validators=[MinValueValidator(PRIORITY_RANGE[0]), MaxValueValidator(PRIORITY_RANGE[1])],
        help_text=_("Higher is tried first. Set by staff only, -100 to 100."),
    )
    weight = models.PositiveIntegerField(
        verbose_name=_("weight"),
        default=1,
        validators=[MinValueValidator(WEIGHT_RANGE[0]), MaxValueValidator(WEIGHT_RANGE[1])],
        help_text=_("Relative share within a priority, 1 to 100 (counted as 1 while on probation)."),
    )
    # When the current probation began: only calls since then count towards leaving it.
    probation_since = models.DateTimeField(verbose_name=_("probation since"), default=timezone.now, editable=False)
    approved_at = models.DateTimeField(
        verbose_name=_("approved at"),
        null=True,
        blank=True,
        help_text=_("When the channel left probation (staff approval or a proven record); empty: on probation."),
    )
    rpm_limit = models.PositiveIntegerField(verbose_name=_("rpm limit"), null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(verbose_name=_("concurrency limit"), null=True, blank=True)
    status = models.CharField(
        verbose_name=_("status"), max_length=16, choices=ChannelStatus.choices, default=ChannelStatus.ACTIVE
    )
    status_reason = models.CharField(verbose_name=_("status reason"), max_length=300, blank=True)
    status_changed_at = models.DateTimeField(verbose_name=_("status changed at"), null=True, blank=True)
    auto_disable = models.BooleanField(
        verbose_name=_("auto disable"), default=True, help_text=_("Disable on authentication or quota errors.")
    )
    visibility = models.CharField(
        verbose_name=_("visibility"), max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    # Upstream usage at the catalog's prices after which the channel rests until the UTC day or month
    # turns (channels_app/spend.py); calls in flight count at their holds.
    daily_spend_limit_usd = models.DecimalField(
        verbose_name=_("daily spend limit USD"),
        **PRICE,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    monthly_spend_limit_usd = models.DecimalField(
        verbose_name=_("monthly spend limit USD"),
        **PRICE,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    # The secret of the channel's invitation link (private channels); empty: no link works.
    invitation_token = models.CharField(verbose_name=_("invitation token"), max_length=43, blank=True, editable=False)
    last_test_at = models.DateTimeField(verbose_name=_("last test at"), null=True, blank=True)
    last_test_ok = models.BooleanField(verbose_name=_("last test ok"), null=True, blank=True)
    last_test_latency_ms = models.PositiveIntegerField(verbose_name=_("last test latency ms"), null=True, blank=True)
    last_test_message = models.CharField(verbose_name=_("last test message"), max_length=300, blank=True)
    balance_usd = models.DecimalField(verbose_name=_("balance USD"), **PRICE, null=True, blank=True)
    balance_status = models.CharField(verbose_name=_("balance status"), max_length=200, blank=True)
    balance_checked_at = models.DateTimeField(verbose_name=_("balance checked at"), null=True, blank=True)
    min_balance_usd = models.DecimalField(
        verbose_name=_("min balance USD"),
        **PRICE,
        null=True,
        blank=True,
        help_text=_("Pause the channel when its upstream balance drops below this."),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["-priority", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner_cut__gte=0) & Q(owner_cut__lte=Decimal("0.5")), name="owner_cut_0_to_50"
            ),
            models.CheckConstraint(
                condition=Q(weight__gte=WEIGHT_RANGE[0]) & Q(weight__lte=WEIGHT_RANGE[1]), name="weight_1_to_100"
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_RANGE[0]) & Q(priority__lte=PRIORITY_RANGE[1]),
                name="priority_within_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def api_format(self) -> str:
        return providers.get(self.provider).wire_format

    @property
    def on_probation(self) -> bool:
        return self.approved_at is None


class ChannelShare(models.Model):
    """A user a private channel is shared with: their keys' calls may be routed to it."""

    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="shared_channels"
    )
    via = models.CharField(
        verbose_name=_("via"), max_length=12, choices=[("owner", "Added by the owner"), ("link", "Invitation link")]
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("channel share")
        verbose_name_plural = _("channel shares")
        ordering = ["channel", "created_at"]
        constraints = [models.UniqueConstraint(fields=["channel", "user"], name="one_share_per_user")]

    def __str__(self) -> str:
        return f"{self.channel.public_id} shared with {self.user}"


class ChannelKey(models.Model):
    """One upstream key of a channel, AES-GCM encrypted; only its last characters are ever shown."""

    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.CASCADE, related_name="keys")
    position = models.PositiveIntegerField(verbose_name=_("position"), default=0)
    key_id = models.CharField(verbose_name=_("key ID"), max_length=32, help_text=_("Encryption key version."))
    ciphertext = models.TextField(verbose_name=_("ciphertext"))
    masked = models.CharField(verbose_name=_("masked"), max_length=12)

    class Meta:
        verbose_name = _("channel key")
        verbose_name_plural = _("channel keys")
        ordering = ["channel", "position"]
        constraints = [models.UniqueConstraint(fields=["channel", "position"], name="one_key_per_position")]

    def __str__(self) -> str:
        return f"{self.channel.public_id} key {self.position} {self.masked}"
