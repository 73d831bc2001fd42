"""Cards through Stripe: a Checkout Session to redirect to, and its signed webhook.

The official `stripe` library makes every call (its base address from STRIPE_API_BASE) and verifies
every webhook (`Stripe-Signature`: an HMAC-SHA256 of the timestamp and body with the endpoint's
secret, at most five minutes old).
"""

from __future__ import annotations

from datetime import timedelta

import stripe
from django.conf import settings
from django.utils import timezone

from .base import (
    Checkout,
    InvalidNotification,
    Kind,
    Notice,
    Provider,
    ProviderError,
    RemoteStatus,
    from_minor,
    origin_of,
    to_minor,
)

# Stripe's own minimum for a Checkout Session's expiry.
SESSION_MINUTES = 30


def _config() -> dict:
    return settings.TOKENHUB_PAYMENTS["stripe"]


def _client() -> stripe.StripeClient:
    config = _config()
    return stripe.StripeClient(
        config["secret_key"],
        base_addresses={"api": config["api_base"]},
        max_network_retries=2,  # with Stripe's idempotency keys, so a retried create makes one session
        http_client=stripe.RequestsClient(timeout=settings.TOKENHUB_PAYMENT_TIMEOUT_SECONDS),
    )


def _failed(exc: stripe.StripeError) -> ProviderError:
    # Stripe's user_message is written for the payer; the rest may name request ids, never a key.
    return ProviderError(getattr(exc, "user_message", None) or "Stripe refused the request.")


class StripeProvider(Provider):
    name = "stripe"

    def configured(self) -> bool:
        config = _config()
        return bool(config["secret_key"] and config["webhook_secret"])

    def create_checkout(self, order, *, return_url: str, cancel_url: str, notify_url: str) -> Checkout:
        params = {
            "mode": "payment",
            "client_reference_id": order.code,
            "metadata": {"order": order.code},
            "payment_intent_data": {"metadata": {"order": order.code}},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": order.currency.lower(),
                        "unit_amount": to_minor(order.amount),
                        "product_data": {
                            "name": f"{settings.TOKENHUB_SITE_NAME} credit ${order.credit_usd.normalize():f}"
                        },
                    },
                }
            ],
            "success_url": return_url,
            "cancel_url": cancel_url,
            "expires_at": int((timezone.now() + timedelta(minutes=SESSION_MINUTES)).timestamp()),
        }
        try:
            session = _client().v1.checkout.sessions.create(params, {"idempotency_key": f"checkout-{order.code}"})
        except stripe.StripeError as exc:
            raise _failed(exc) from None
        return Checkout(provider_ref=session.id, redirect_url=session.url)

    def checkout_origins(self) -> list[str]:
        # Stripe's hosted Checkout; a test or sandbox API base serves its own checkout page.
        origins = ["https://checkout.stripe.com"]
        if _config()["api_base"] != "https://api.stripe.com":
            origins.append(origin_of(_config()["api_base"]))
        return origins

    def read_notification(self, request) -> list[Notice]:
        signature = request.headers.get("stripe-signature")
        if not signature:
            raise InvalidNotification("no Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(request.body.decode("utf-8"), signature, _config()["webhook_secret"])
        except stripe.SignatureVerificationError:
            raise InvalidNotification(
                "the Stripe-Signature does not match the body and secret, or is too old"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidNotification("the body is not a Stripe event") from None
        return [_notice(event)]

    def query(self, order) -> RemoteStatus:
        try:
            session = _client().v1.checkout.sessions.retrieve(order.provider_ref)
        except stripe.StripeError as exc:
            raise _failed(exc) from None
        if session.payment_status in ("paid", "no_payment_required") and session.status == "complete":
            state = "paid"
        elif session.status == "expired":
            state = "closed"
        else:
            state = "pending"
        return RemoteStatus(
            state=state,
            amount=from_minor(session.amount_total) if session.amount_total is not None else None,
            currency=(session.currency or "").upper(),
            provider_ref=session.id,
            payment_ref=_id_of(_field(session, "payment_intent")),
        )

    def refund(self, order, amount, request_no: str) -> str:
        if not order.payment_ref:
            raise ProviderError("Stripe has not named this order's payment yet; try again once it is confirmed.")
        params = {"payment_intent": order.payment_ref, "amount": to_minor(amount), "metadata": {"order": order.code}}
        try:
            refund = _client().v1.refunds.create(params, {"idempotency_key": request_no})
        except stripe.StripeError as exc:
            raise _failed(exc) from None
        return refund.id


def _field(obj, name: str):
    """A Stripe object's field, or None when the event left it out (StripeObject has no .get)."""
    try:
        return obj[name]
    except (KeyError, TypeError):
        return None


def _id_of(value) -> str:
    """An expandable field: an id, or the object itself."""
    if isinstance(value, str):
        return value
    return getattr(value, "id", "") or ""


def _notice(event) -> Notice:
    kind, data = event.type, event.data.object
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if _field(data, "payment_status") != "paid":  # e.g. a bank debit still settling: its success comes later
            return Notice(event_id=event.id, kind=Kind.IGNORED, description=f"{kind} (not paid yet)")
        return Notice(
            event_id=event.id,
            kind=Kind.PAID,
            order_code=_field(data, "client_reference_id") or "",
            payment_ref=_id_of(_field(data, "payment_intent")),
            amount=from_minor(_field(data, "amount_total")),
            currency=str(_field(data, "currency") or "").upper(),
            provider_ref=_field(data, "id") or "",
            description=kind,
        )
    if kind == "charge.refunded":
        return Notice(
            event_id=event.id,
            kind=Kind.REFUNDED,
            payment_ref=_id_of(_field(data, "payment_intent")),
            amount=from_minor(_field(data, "amount_refunded")),
            currency=str(_field(data, "currency") or "").upper(),
            description=kind,
        )
    if kind == "charge.dispute.created":
        return Notice(
            event_id=event.id,
            kind=Kind.DISPUTED,
            payment_ref=_id_of(_field(data, "payment_intent")),
            amount=from_minor(_field(data, "amount")),
            currency=str(_field(data, "currency") or "").upper(),
            description=kind,
        )
    return Notice(event_id=event.id, kind=Kind.IGNORED, description=kind)
