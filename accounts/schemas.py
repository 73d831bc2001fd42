from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ninja import Schema


class MeOut(Schema):
    username: str
    email: str
    is_staff: bool


class ApiKeyOut(Schema):
    public_id: str
    name: str
    prefix: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    allowed_models: list[str]
    spend_cap_usd: Decimal | None
    spent_usd: Decimal
