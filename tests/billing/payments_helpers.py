"""Shared by the top-up tests: test keys, the fake providers, plans, and notifications signed as each
provider signs them (devtools/fake_payments/signing.py, written from their documentation)."""

from __future__ import annotations

import json
from decimal import Decimal

from django.test import Client

from billing.models import ExchangeRate, PaymentOrder, Plan
from devtools.fake_payments import signing


def plan(**fields) -> Plan:
    defaults = {
        "name": "Starter",
        "name_zh": "入门",
        "currency": "USD",
        "price": Decimal("5.00"),
        "credit_usd": Decimal("5"),
    }
    return Plan.objects.create(**(defaults | fields))


def rate(currency: str = "USD", cny: str = "7.20") -> ExchangeRate:
    found, _created = ExchangeRate.objects.update_or_create(currency=currency, defaults={"cny_per_unit": Decimal(cny)})
    return found


def checkout(client: Client, offer: Plan, method: str, amount: str | None = None):
    form = {"plan": offer.pk, "method": method}
    if amount is not None:
        form["amount"] = amount
    return client.post("/payments/checkout/", form)


def latest_order() -> PaymentOrder:
    return PaymentOrder.objects.order_by("-id").first()


# --- Notifications as each provider sends them ---------------------------------------------------------


def stripe_paid(keys: signing.Keys, order: PaymentOrder, *, amount_cents=None, currency=None, event_id=None):
    session = {
        "id": order.provider_ref,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": amount_cents if amount_cents is not None else int(order.amount * 100),
        "currency": (currency or order.currency).lower(),
        "client_reference_id": order.code,
        "payment_intent": "pi_test_" + order.code,
    }
    return signing.stripe_event("checkout.session.completed", session, event_id=event_id)


def post_stripe(client: Client, keys: signing.Keys, payload: str, *, secret=None, timestamp=None):
    signature = signing.stripe_signature(secret or keys.stripe_webhook_secret, payload, timestamp)
    return client.post(
        "/payments/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def alipay_paid(keys: signing.Keys, order: PaymentOrder, *, amount=None, notify_id="n1", private=None, **extra):
    params = {
        "notify_time": "2026-12-04 12:00:00",
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": keys.alipay_app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026120422001" + order.code[-8:],
        "out_trade_no": order.code,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount or f"{order.amount:.2f}",
        "gmt_payment": "2026-12-04 12:00:00",
    } | extra
    return signing.alipay_signed(params, private or keys.alipay_private)


def post_alipay(client: Client, form: dict):
    return client.post("/payments/alipay/notify/", form)


def wechat_paid(keys: signing.Keys, order: PaymentOrder, *, total=None, event_id=None, apiv3_key=None) -> str:
    resource = {
        "mchid": keys.wechat_mchid,
        "appid": keys.wechat_appid,
        "out_trade_no": order.code,
        "transaction_id": "4200001" + order.code[-10:],
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "amount": {"total": total if total is not None else int(order.amount * 100), "currency": "CNY"},
    }
    return signing.wechat_notification(apiv3_key or keys.wechat_apiv3_key, "TRANSACTION.SUCCESS", resource, event_id)


def post_wechat(client: Client, keys: signing.Keys, body: str, *, private=None, key_id=None, timestamp=None):
    headers = signing.wechat_headers(
        private or keys.wechat_platform_private, key_id or keys.wechat_public_key_id, body, timestamp
    )
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return client.post("/payments/wechat/notify/", body, content_type="application/json", **extra)


def answer_of(response) -> dict:
    return json.loads(response.content)
