from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.urls import reverse
from ninja import Field, Schema

from tokenhub.lib.money import Money

from . import spend
from .owner_input import PRIORITY_RANGE, WEIGHT_RANGE


class ChannelOut(Schema):
    public_id: str
    name: str
    provider: str
    base_url: str
    model_names: list[str]
    model_mapping: dict[str, str]
    owner_cut_percent: Decimal
    priority: int
    weight: int
    on_probation: bool
    status: str
    status_reason: str
    masked_keys: list[str]
    last_test_at: datetime | None
    last_test_ok: bool | None
    last_test_latency_ms: int | None
    last_test_message: str
    balance_usd: Decimal | None
    balance_status: str
    visibility: str
    shared_with: list[str]
    invitation_path: str | None
    daily_spend_limit_usd: Money | None
    monthly_spend_limit_usd: Money | None
    spent_today_usd: Money
    spent_this_month_usd: Money

    @staticmethod
    def resolve_spent_today_usd(channel) -> Decimal:
        return spend.current(channel.pk)[0]

    @staticmethod
    def resolve_spent_this_month_usd(channel) -> Decimal:
        return spend.current(channel.pk)[1]

    @staticmethod
    def resolve_shared_with(channel) -> list[str]:
        return [share.user.username for share in channel.shares.select_related("user").order_by("user__username")]

    @staticmethod
    def resolve_invitation_path(channel) -> str | None:
        """The invitation link's path (on the site's origin) while the channel is private and has one."""
        if channel.visibility != "private" or not channel.invitation_token:
            return None
        return reverse("channels:invitation", args=[channel.invitation_token])

    @staticmethod
    def resolve_owner_cut_percent(channel) -> Decimal:
        return (channel.owner_cut * 100).quantize(Decimal("0.01"))

    @staticmethod
    def resolve_masked_keys(channel) -> list[str]:
        return [key.masked for key in channel.keys.all()]


class ChannelIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    provider: str
    base_url: str = ""
    upstream_keys: list[str] = Field(min_length=1)
    model_names: list[str] = Field(min_length=1)
    model_mapping: dict[str, str] = {}
    owner_cut_percent: Decimal = Field(Decimal("0"), ge=0, le=50)
    priority: int | None = Field(None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])  # staff only
    weight: int = Field(1, ge=WEIGHT_RANGE[0], le=WEIGHT_RANGE[1])
    visibility: Literal["public", "private"] = "public"
    daily_spend_limit_usd: Decimal | None = Field(None, ge=Decimal("0.01"), decimal_places=8)
    monthly_spend_limit_usd: Decimal | None = Field(None, ge=Decimal("0.01"), decimal_places=8)


class ChannelPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    upstream_keys: list[str] | None = None
    model_names: list[str] | None = None
    model_mapping: dict[str, str] | None = None
    owner_cut_percent: Decimal | None = Field(None, ge=0, le=50)
    priority: int | None = Field(None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])  # staff only
    weight: int | None = Field(None, ge=WEIGHT_RANGE[0], le=WEIGHT_RANGE[1])
    visibility: Literal["public", "private"] | None = None
    # null removes a limit.
    daily_spend_limit_usd: Decimal | None = Field(None, ge=Decimal("0.01"), decimal_places=8)
    monthly_spend_limit_usd: Decimal | None = Field(None, ge=Decimal("0.01"), decimal_places=8)


class ShareIn(Schema):
    # Checked by the domain after the channel's ownership, so a stranger learns nothing from a 422.
    username: str = Field("", max_length=150)


class InvitedChannelOut(Schema):
    """What a user who accepted an invitation learns of the channel: enough to recognise it."""

    public_id: str
    name: str
    owner: str
    model_names: list[str]

    @staticmethod
    def resolve_owner(channel) -> str:
        return channel.owner.username


class TestOut(Schema):
    ok: bool
    latency_ms: int
    message: str
    status: str
