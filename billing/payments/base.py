"""The one interface every payment provider plugs into, and what passes through it.

A provider makes a checkout for an order (a page to send the buyer to, or a QR code to scan), reads a
notification its servers sent (verifying the signature with its own library: nothing unverified
leaves `read_notification`), tells an order's status when asked, and refunds. It never touches the
ledger: billing/payments/orders.py decides what a verified notice changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

from django.http import HttpResponse

CENT = Decimal("0.01")


def to_minor(amount: Decimal) -> int:
    """Cents (fen): every currency TokenHub sells in has two decimal places."""
    return int((amount / CENT).to_integral_value(rounding=ROUND_HALF_UP))


def from_minor(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidNotification(f"an amount that is not a whole number of cents: {value!r}")
    return (Decimal(value) * CENT).quantize(CENT)


def parse_amount(text) -> Decimal:
    """'36.00' as the providers that send decimal strings write it (Alipay)."""
    try:
        value = Decimal(str(text))
    except ArithmeticError:
        raise InvalidNotification(f"an amount that is not a number: {text!r}") from None
    if not value.is_finite() or value != value.quantize(CENT):
        raise InvalidNotification(f"an amount that is not a whole number of cents: {text!r}")
    return value.quantize(CENT)


@dataclass(frozen=True)
class Checkout:
    """Where the buyer pays: a provider page (`redirect_url`) or a QR code's content (`qr_content`)."""

    provider_ref: str = ""
    redirect_url: str = ""
    qr_content: str = ""


class Kind:
    PAID, REFUNDED, DISPUTED, IGNORED = "paid", "refunded", "disputed", "ignored"


@dataclass(frozen=True)
class Notice:
    """A verified notification, reduced to what an order needs.

    `amount` is the payment's amount for PAID; for REFUNDED and DISPUTED the total refunded or disputed
    so far (providers send running totals, so a replayed or reordered notice changes nothing twice)."""

    event_id: str
    kind: str
    order_code: str = ""
    payment_ref: str = ""  # when the provider names the payment, not our order (Stripe's refunds)
    amount: Decimal = Decimal("0")
    currency: str = ""
    provider_ref: str = ""
    description: str = ""


@dataclass(frozen=True)
class RemoteStatus:
    """An order as the provider's query API sees it."""

    state: str  # "paid", "pending" or "closed"
    amount: Decimal | None = None
    currency: str = ""
    provider_ref: str = ""
    payment_ref: str = ""


class InvalidNotification(Exception):
    """A notification that is unsigned, wrongly signed, stale or malformed: it changes nothing."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProviderError(Exception):
    """The provider's API refused or could not be reached; the message is safe to show (no secret)."""


class Provider:
    name: str = ""
    # "CNY" for providers that charge in yuan whatever the plan's currency; "" for the plan's own.
    charge_currency: str = ""

    def configured(self) -> bool:
        raise NotImplementedError

    def create_checkout(self, order, *, return_url: str, cancel_url: str, notify_url: str) -> Checkout:
        raise NotImplementedError

    def checkout_origins(self) -> list[str]:
        """Origins of the pages the buyer is redirected to (none for a QR code shown on TokenHub's page)."""
        return []

    def read_notification(self, request) -> list[Notice]:
        """The notices in one notification request; raises InvalidNotification for anything not proven."""
        raise NotImplementedError

    def acknowledge(self) -> HttpResponse:
        """What the provider expects back once a notification is handled (then it stops resending)."""
        return HttpResponse(status=200)

    def refuse(self, reason: str) -> HttpResponse:
        """The answer to a notification that failed verification: an error, so the provider retries a real one."""
        return HttpResponse(status=400)

    def query(self, order) -> RemoteStatus:
        raise NotImplementedError

    def refund(self, order, amount: Decimal, request_no: str) -> str:
        """Ask the provider to refund `amount` of the order (in its currency); returns the refund's id."""
        raise NotImplementedError


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
