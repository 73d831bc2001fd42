from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema

from accounts.models import KeyScope
from tokenhub.lib.money import Money
from tokenhub.lib.text import AwareDatetime, PrintableText


class MeOut(Schema):
    username: str
    email: str
    is_staff: bool


class ApiKeyOut(Schema):
    public_id: str
    name: str
    prefix: str
    scope: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    allowed_models: list[str]
    spend_cap_usd: Money | None
    spent_usd: Money


class ApiKeyIn(Schema):
    name: PrintableText(1, 100)
    expires_at: AwareDatetime | None = Field(None, description="With a timezone, e.g. 2027-01-31T12:00:00Z.")
    allowed_models: list[PrintableText(0, 200)] = []
    scope: KeyScope = Field(KeyScope.RELAY, description="relay: /v1 and usage reads; manage: the whole API.")
    spend_cap_usd: Money | None = Field(default=None, ge=0, max_digits=20, decimal_places=8)


class NewApiKeyOut(Schema):
    key: str = Field(description="The full key. Shown only in this response.")
    api_key: ApiKeyOut
