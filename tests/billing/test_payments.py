"""Top-ups end to end without the internet: each provider's own library (stripe, python-alipay-sdk,
wechatpayv3) makes its calls to the fake providers on 127.0.0.1 and verifies notifications that these
tests sign with keys they generate. Credit lands exactly once, whatever the notifications do."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.test import Client

from billing import ledger
from billing.models import OrderStatus, PaymentEvent, PaymentOrder, Transaction, TransactionKind
from billing.payments import orders
from billing.reconcile import reconcile
from devtools.fake_payments import signing
from tests.billing.payments_helpers import (
    checkout,
    latest_order,
    plan,
    post_stripe,
    rate,
    stripe_paid,
)
from tests.conftest import sign_in, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyer(alice):
    client = Client()
    sign_in(client, alice)
    client.user = alice
    return client


def gateway() -> str:
    """The fake providers' base URL (Stripe's API base is the server's root)."""
    from django.conf import settings

    return settings.TOKENHUB_PAYMENTS["stripe"]["api_base"]


def credits_of(order: PaymentOrder) -> int:
    return Transaction.objects.filter(kind=TransactionKind.TOPUP, idempotency_key=f"topup:{order.code}").count()


# --- The pricing page ----------------------------------------------------------------------------------


def test_the_pricing_page_lists_plans_in_both_languages_with_each_methods_price(payments, buyer):
    plan(name="Starter", name_zh="入门", price=Decimal("5.00"), credit_usd=Decimal("5"))
    plan(
        name="Pick an amount",
        name_zh="自选金额",
        price=None,
        credit_usd=None,
        min_price=Decimal("1"),
        max_price=Decimal("500"),
        credit_per_unit=Decimal("1"),
        position=2,
    )
    rate("USD", "7.20")
    english = buyer.get("/pricing/").content.decode()
    assert "Starter" in english and "Card (Stripe)" in english and "36.00 CNY" in english and "5.00 USD" in english
    chinese = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/pricing/").content.decode()
    assert "入门" in chinese and "自选金额" in chinese and "登录后购买" in chinese


def test_a_method_that_charges_in_cny_needs_a_rate_and_says_so(payments, buyer):
    offer = plan()
    refused = checkout(buyer, offer, "alipay")
    assert refused.status_code == 400
    assert "no exchange rate from USD" in refused.content.decode()
    assert not PaymentOrder.objects.exists()


def test_a_chosen_amount_must_fit_the_plans_range(payments, buyer):
    offer = plan(
        price=None, credit_usd=None, min_price=Decimal("2"), max_price=Decimal("100"), credit_per_unit=Decimal("1")
    )
    for amount in ("1.99", "100.01", "5.001", "NaN"):
        assert checkout(buyer, offer, "stripe", amount).status_code == 400, amount
    assert not PaymentOrder.objects.exists()
    assert checkout(buyer, offer, "stripe", "12.50").status_code == 302
    order = latest_order()
    assert (order.amount, order.currency, order.credit_usd) == (Decimal("12.50"), "USD", Decimal("12.5"))


# --- Stripe ---------------------------------------------------------------------------------------------


def test_stripe_checkout_redirects_to_the_session_and_its_signed_webhook_credits_once(payments, buyer, alice):
    offer = plan()
    response = checkout(buyer, offer, "stripe")
    order = latest_order()
    assert response.status_code == 302 and response["Location"] == f"{gateway()}/pay/stripe/{order.provider_ref}"
    assert order.provider_ref.startswith("cs_test_")
    assert order.status == OrderStatus.PENDING and ledger.balance_of(alice.pk) == 0
    payload = stripe_paid(payments, order)
    for _ in range(2):  # Stripe retries: the second changes nothing
        assert post_stripe(Client(), payments, payload).status_code == 200
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.payment_ref == f"pi_test_{order.code}"
    assert ledger.balance_of(alice.pk) == Decimal("5") and credits_of(order) == 1
    assert list(PaymentEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["credited", "replayed"]
    page = buyer.get(f"/payments/orders/{order.code}/").content.decode()
    assert "Paid" in page and "This page is your receipt" in page
    assert reconcile().problems == []


@pytest.mark.parametrize("tamper", ["no header", "wrong secret", "old timestamp", "body changed"])
def test_an_unproven_stripe_notification_changes_nothing_and_is_logged(payments, buyer, alice, tamper):
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    payload = stripe_paid(payments, order)
    client = Client()
    if tamper == "no header":
        response = client.post("/payments/stripe/webhook/", payload, content_type="application/json")
    elif tamper == "wrong secret":
        response = post_stripe(client, payments, payload, secret="whsec_not_the_endpoints")
    elif tamper == "old timestamp":
        response = post_stripe(client, payments, payload, timestamp=int(time.time()) - 3600)
    else:
        signature = signing.stripe_signature(payments.stripe_webhook_secret, payload)
        response = client.post(
            "/payments/stripe/webhook/",
            payload.replace('"amount_total": 500', '"amount_total": 50000'),
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and ledger.balance_of(alice.pk) == 0
    event = PaymentEvent.objects.get()
    assert (event.verified, event.outcome) == (False, "refused") and event.detail


def test_a_signed_notification_for_another_amount_or_currency_credits_nothing(payments, buyer, alice):
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    post_stripe(Client(), payments, stripe_paid(payments, order, amount_cents=100))
    post_stripe(Client(), payments, stripe_paid(payments, order, currency="EUR"))
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and ledger.balance_of(alice.pk) == 0
    assert list(PaymentEvent.objects.values_list("outcome", flat=True)) == ["mismatch", "mismatch"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_duplicate_notifications_credit_once(payments, alice):
    buyer = Client()
    sign_in(buyer, alice)
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    payload = stripe_paid(payments, order)

    def deliver(_):
        from django.db import connection

        try:
            return post_stripe(Client(), payments, payload).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(deliver, range(10)))
    assert statuses == [200] * 10
    assert credits_of(order) == 1 and ledger.balance_of(alice.pk) == Decimal("5")
    outcomes = sorted(PaymentEvent.objects.values_list("outcome", flat=True))
    assert outcomes.count("credited") == 1 and len(outcomes) == 10
    assert reconcile().problems == []


def test_a_lost_notification_is_found_by_the_celery_task_asking_the_provider(payments, buyer, alice, celery_worker):
    from billing.tasks import check_open_orders

    checkout(buyer, plan(), "stripe")
    order = latest_order()
    # The buyer pays at the provider, and its notification never arrives.
    assert httpx.post(f"{gateway()}/_control/stripe/{order.provider_ref}/paid?notify=0").status_code == 200
    PaymentOrder.objects.filter(pk=order.pk).update(created_at=order.created_at - timedelta(minutes=2))
    check_open_orders.delay()
    wait_for(lambda: PaymentOrder.objects.get(pk=order.pk).status == OrderStatus.PAID)
    assert ledger.balance_of(alice.pk) == Decimal("5") and credits_of(order) == 1
    assert orders.check_open_orders() == {}  # nothing pending any more
    assert PaymentEvent.objects.get().source == "query"
