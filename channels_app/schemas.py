from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ninja import Field, Schema

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


class ChannelPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    upstream_keys: list[str] | None = None
    model_names: list[str] | None = None
    model_mapping: dict[str, str] | None = None
    owner_cut_percent: Decimal | None = Field(None, ge=0, le=50)
    priority: int | None = Field(None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])  # staff only
    weight: int | None = Field(None, ge=WEIGHT_RANGE[0], le=WEIGHT_RANGE[1])


class TestOut(Schema):
    ok: bool
    latency_ms: int
    message: str
    status: str
