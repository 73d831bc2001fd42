from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from ninja import Field, Schema

from tokenhub.lib.money import Money
from tokenhub.lib.text import PrintableText


class BalanceOut(Schema):
    balance_usd: Money
    earnings_usd: Money


class UsageOut(Schema):
    request_id: str
    created_at: datetime
    model: str
    api_key: str | None = Field(None, alias="api_key.public_id")
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Money
    latency_ms: int
    status: str
    estimated: bool


class UsagePage(Schema):
    count: int
    page: int
    pages: int
    results: list[UsageOut]


class UsageQuery(Schema):
    key: PrintableText(0, 64) = ""
    model: PrintableText(0, 200) = ""
    status: PrintableText(0, 32) = ""
    start: date | None = None
    end: date | None = None
    page: int = Field(1, ge=1)
    per_page: int = Field(50, ge=1, le=500)


class StatementLine(Schema):
    created_at: datetime
    account: str
    kind: str
    description: str
    amount_usd: Money


class StatementPage(Schema):
    count: int
    page: int
    pages: int
    results: list[StatementLine]


class CheckInOut(Schema):
    state: str
    reward_usd: Money


class RedeemIn(Schema):
    code: PrintableText(1, 40)


class RedeemOut(Schema):
    amount_usd: Money
    balance_usd: Money


class ChannelEarnings(Schema):
    channel: str
    calls: int
    revenue_usd: Money
    earned_usd: Money


class EarningsOut(Schema):
    available_usd: Money
    earned_total_usd: Money
    calls: int
    share_percent: Decimal | None
    per_channel: list[ChannelEarnings]


class AmountIn(Schema):
    amount_usd: Money | None = Field(None, gt=0, max_digits=20, decimal_places=8)


class PayoutIn(Schema):
    amount_usd: Money = Field(gt=0, max_digits=20, decimal_places=8)
    destination: PrintableText(1, 200)


class PayoutOut(Schema):
    public_id: str
    amount: Money
    destination: str
    status: str
    created_at: datetime
