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

    name = models.CharField(max_length=200, unique=True)
    provider = models.CharField(max_length=40, blank=True, help_text="Who makes it (informational).")
    display_name = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=20, default="chat", choices=[("chat", "chat"), ("embedding", "embedding")])
    context_window = models.PositiveIntegerField(null=True, blank=True)
    default_output_tokens = models.PositiveIntegerField(default=4096)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    input_price = models.DecimalField(**PRICE, null=True, blank=True)
    output_price = models.DecimalField(**PRICE, null=True, blank=True)
    cache_read_price = models.DecimalField(**PRICE, null=True, blank=True)
    cache_write_price = models.DecimalField(**PRICE, null=True, blank=True)
    reasoning_price = models.DecimalField(**PRICE, null=True, blank=True)
    # What the model can do besides text in and out, for the models page's filter (CAPABILITIES).
    capabilities = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
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

    alias = models.CharField(max_length=200, unique=True)
    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "model aliases"

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

    public_id = models.CharField(max_length=20, unique=True, default=new_channel_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="channels")
    name = models.CharField(max_length=100, validators=[validate_text])
    provider = models.CharField(max_length=24, choices=providers.choices)
    base_url = models.URLField(max_length=300, validators=[validate_upstream_url])
    model_names = models.JSONField(
        default=list,
        validators=[validate_model_names],
        help_text="Model names (canonical or alias) this channel serves.",
    )
    model_mapping = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_model_mapping],
        help_text='Optional {"name callers use": "name the upstream expects"}.',
    )
    owner_cut = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.5"))],
        help_text="The owner's share of each call, 0 to 0.5 (50 %).",
    )
    priority = models.IntegerField(
        default=0,
        validators=[MinValueValidator(PRIORITY_RANGE[0]), MaxValueValidator(PRIORITY_RANGE[1])],
        help_text="Higher is tried first. Set by staff only, -100 to 100.",
    )
    weight = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(WEIGHT_RANGE[0]), MaxValueValidator(WEIGHT_RANGE[1])],
        help_text="Relative share within a priority, 1 to 100 (counted as 1 while on probation).",
    )
    # When the current probation began: only calls since then count towards leaving it.
    probation_since = models.DateTimeField(default=timezone.now, editable=False)
    approved_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the channel left probation (staff approval or a proven record); empty: on probation.",
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ChannelStatus.choices, default=ChannelStatus.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    auto_disable = models.BooleanField(default=True, help_text="Disable on authentication or quota errors.")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC)
    # Upstream usage at the catalog's prices after which the channel rests until the UTC day or month
    # turns (channels_app/spend.py); calls in flight count at their holds.
    daily_spend_limit_usd = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))]
    )
    monthly_spend_limit_usd = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))]
    )
    # The secret of the channel's invitation link (private channels); empty: no link works.
    invitation_token = models.CharField(max_length=43, blank=True, editable=False)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_test_message = models.CharField(max_length=300, blank=True)
    balance_usd = models.DecimalField(**PRICE, null=True, blank=True)
    balance_status = models.CharField(max_length=200, blank=True)
    balance_checked_at = models.DateTimeField(null=True, blank=True)
    min_balance_usd = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="Pause the channel when its upstream balance drops below this."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
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

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shared_channels")
    via = models.CharField(max_length=12, choices=[("owner", "Added by the owner"), ("link", "Invitation link")])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["channel", "created_at"]
        constraints = [models.UniqueConstraint(fields=["channel", "user"], name="one_share_per_user")]

    def __str__(self) -> str:
        return f"{self.channel.public_id} shared with {self.user}"


class ChannelKey(models.Model):
    """One upstream key of a channel, AES-GCM encrypted; only its last characters are ever shown."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="keys")
    position = models.PositiveIntegerField(default=0)
    key_id = models.CharField(max_length=32, help_text="Encryption key version.")
    ciphertext = models.TextField()
    masked = models.CharField(max_length=12)

    class Meta:
        ordering = ["channel", "position"]
        constraints = [models.UniqueConstraint(fields=["channel", "position"], name="one_key_per_position")]

    def __str__(self) -> str:
        return f"{self.channel.public_id} key {self.position} {self.masked}"
