from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ninja import Field, Schema

from accounts.models import KeyScope
from tokenhub.lib.money import Money
from tokenhub.lib.text import AwareDatetime, PrintableText


class MeOut(Schema):
    username: str
    email: str
    email_verified: bool
    is_staff: bool
    two_factor: bool
    low_balance_alert_usd: Money | None
    notifications_off: list[str]

    @staticmethod
    def resolve_two_factor(user) -> bool:
        from .two_factor import is_enabled

        return is_enabled(user)


class SettingsPatch(Schema):
    """The account's alert and notification switches (the address changes on the settings page, with
    the password)."""

    low_balance_alert_usd: Decimal | None = Field(default=None, ge=0, le=1_000_000_000, max_digits=20, decimal_places=8)
    notifications_off: list[str] | None = None


class AuditEntryOut(Schema):
    """An entry as its owner sees it (accounts/audit.py `shown_to_owner`): others' addresses left out."""

    created_at: datetime
    action: str
    target: str
    actor: str
    via: str
    before: dict | None
    after: dict | None

    @staticmethod
    def resolve_actor(entry) -> str:
        from .audit import shown_to_owner

        return shown_to_owner(entry)[0]

    @staticmethod
    def resolve_via(entry) -> str:
        from .audit import shown_to_owner

        return shown_to_owner(entry)[1]


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
