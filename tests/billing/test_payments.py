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

from accounts import keys as api_keys
from billing import ledger
from billing.models import OrderStatus, PaymentEvent, PaymentOrder, Transaction, TransactionKind
from billing.payments import orders
from billing.reconcile import reconcile
from devtools.fake_payments import signing
from tests.billing.payments_helpers import (
    alipay_paid,
    answer_of,
    checkout,
    latest_order,
    plan,
    post_alipay,
    post_stripe,
    post_wechat,
    rate,
    stripe_paid,
    wechat_paid,
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


# --- Alipay ---------------------------------------------------------------------------------------------


def test_alipay_precreates_a_qr_code_in_cny_and_its_rsa2_notification_credits_once(payments, buyer, alice):
    rate("USD", "7.20")
    response = checkout(buyer, plan(), "alipay")
    order = latest_order()
    assert response.status_code == 302 and response["Location"] == f"/payments/orders/{order.code}/"
    assert (order.amount, order.currency, order.exchange_rate) == (Decimal("36.00"), "CNY", Decimal("7.2"))
    assert order.qr_content == f"{gateway()}/pay/alipay/{order.code}"  # precreated by the SDK at the fake
    page = buyer.get(f"/payments/orders/{order.code}/").content.decode()
    assert "<svg" in page and "Scan with Alipay to pay." in page and "36.00 CNY" in page
    form = alipay_paid(payments, order)
    for _ in range(2):
        answer = post_alipay(Client(), form)
        assert (answer.status_code, answer.content) == (200, b"success")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and ledger.balance_of(alice.pk) == Decimal("5") and credits_of(order) == 1
    assert reconcile().problems == []


@pytest.mark.parametrize("tamper", ["another key", "amount edited", "another app", "unsigned"])
def test_an_unproven_or_mismatched_alipay_notification_changes_nothing(payments, buyer, alice, tamper):
    from devtools.fake_payments.signing import new_rsa

    rate("USD", "7.20")
    checkout(buyer, plan(), "alipay")
    order = latest_order()
    if tamper == "another key":
        form = alipay_paid(payments, order, private=new_rsa()[0])
    elif tamper == "amount edited":
        form = alipay_paid(payments, order) | {"total_amount": "3600.00"}
    elif tamper == "another app":
        form = alipay_paid(payments, order, app_id="2021000000000000")
    else:
        form = {key: value for key, value in alipay_paid(payments, order).items() if key != "sign"}
    answer = post_alipay(Client(), form)
    assert (answer.status_code, answer.content) == (400, b"fail")
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and ledger.balance_of(alice.pk) == 0
    assert PaymentEvent.objects.get().outcome == "refused"


def test_a_signed_alipay_notification_for_less_money_is_a_mismatch(payments, buyer, alice):
    rate("USD", "7.20")
    checkout(buyer, plan(), "alipay")
    order = latest_order()
    assert post_alipay(Client(), alipay_paid(payments, order, amount="0.01")).content == b"success"
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and PaymentEvent.objects.get().outcome == "mismatch"


def test_an_alipay_payment_whose_notice_was_lost_is_found_by_the_trade_query(payments, buyer, alice):
    rate("USD", "7.20")
    checkout(buyer, plan(), "alipay")
    order = latest_order()
    assert orders.check_with_provider(order) == "ignored"  # not paid yet: still pending
    httpx.post(f"{gateway()}/_control/alipay/{order.code}/paid?notify=0")
    assert orders.check_with_provider(order) == "credited"
    assert ledger.balance_of(alice.pk) == Decimal("5")


# --- WeChat Pay -----------------------------------------------------------------------------------------


def test_wechat_native_makes_a_code_url_and_its_encrypted_signed_notification_credits_once(payments, buyer, alice):
    rate("USD", "7.20")
    checkout(buyer, plan(), "wechat")
    order = latest_order()
    assert order.qr_content == f"{gateway()}/pay/wechat/{order.code}" and order.amount == Decimal("36.00")
    body = wechat_paid(payments, order)
    for _ in range(2):
        answer = post_wechat(Client(), payments, body)
        assert answer.status_code == 200 and answer_of(answer)["code"] == "SUCCESS"
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and ledger.balance_of(alice.pk) == Decimal("5") and credits_of(order) == 1
    assert order.provider_ref == "4200001" + order.code[-10:]
    assert reconcile().problems == []


@pytest.mark.parametrize("tamper", ["another signer", "another key id", "stale", "wrong apiv3 key", "body edited"])
def test_an_unproven_wechat_notification_changes_nothing(payments, buyer, alice, tamper):
    from devtools.fake_payments.signing import new_rsa

    rate("USD", "7.20")
    checkout(buyer, plan(), "wechat")
    order = latest_order()
    body = wechat_paid(payments, order)
    client = Client()
    if tamper == "another signer":
        answer = post_wechat(client, payments, body, private=new_rsa()[0])
    elif tamper == "another key id":
        answer = post_wechat(client, payments, body, key_id="PUB_KEY_ID_SOMEONE_ELSE")
    elif tamper == "stale":
        answer = post_wechat(client, payments, body, timestamp=int(time.time()) - 900)
    elif tamper == "wrong apiv3 key":
        answer = post_wechat(client, payments, wechat_paid(payments, order, apiv3_key="0" * 32))
    else:
        # One body signed, another sent.
        headers = signing.wechat_headers(payments.wechat_platform_private, payments.wechat_public_key_id, body)
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        other = wechat_paid(payments, order, total=1)
        answer = client.post("/payments/wechat/notify/", other, content_type="application/json", **extra)
    assert answer.status_code == 401 and answer_of(answer)["code"] == "FAIL"
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and ledger.balance_of(alice.pk) == 0
    assert PaymentEvent.objects.get().outcome == "refused"


def test_a_wechat_payment_whose_notice_was_lost_is_found_by_the_order_query(payments, buyer, alice):
    rate("USD", "7.20")
    checkout(buyer, plan(), "wechat")
    order = latest_order()
    assert orders.check_with_provider(order) == "ignored"
    httpx.post(f"{gateway()}/_control/wechat/{order.code}/paid?notify=0")
    assert orders.check_with_provider(order) == "credited"
    assert ledger.balance_of(alice.pk) == Decimal("5")


# --- Late, closed, refunded, charged back -------------------------------------------------------------------


def test_an_unpaid_order_closes_after_its_expiry_and_a_late_payment_still_counts(payments, buyer, alice, settings):
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    PaymentOrder.objects.filter(pk=order.pk).update(created_at=order.created_at - timedelta(hours=2))
    assert orders.check_open_orders() == {"closed": 1}
    order.refresh_from_db()
    assert order.status == OrderStatus.CLOSED
    post_stripe(Client(), payments, stripe_paid(payments, order))  # the money arrived after all
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and ledger.balance_of(alice.pk) == Decimal("5")


def paid_order(payments, buyer, method="stripe") -> PaymentOrder:
    if method != "stripe":
        rate("USD", "7.20")
    checkout(buyer, plan(), method)
    order = latest_order()
    httpx.post(
        f"{gateway()}/_control/{method}/{order.provider_ref if method == 'stripe' else order.code}/paid?notify=0"
    )
    assert orders.check_with_provider(order) == "credited"
    order.refresh_from_db()
    return order


@pytest.mark.parametrize("method", ["stripe", "alipay", "wechat"])
def test_a_staff_refund_goes_through_the_provider_and_takes_the_credit_back(payments, buyer, alice, method):
    order = paid_order(payments, buyer, method)
    half = order.amount / 2
    assert orders.refund(order, half, actor="admin:root") == "taken back"
    order.refresh_from_db()
    assert order.refunded_amount == half and order.status == OrderStatus.PAID
    assert ledger.balance_of(alice.pk) == Decimal("2.5")
    orders.refund(order, None, actor="admin:root")
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED and order.debited_usd == Decimal("5")
    assert ledger.balance_of(alice.pk) == 0 and order.unrecovered_usd == 0
    with pytest.raises(orders.OrderRefused):
        orders.refund(order, Decimal("0.01"), actor="admin:root")  # nothing left to refund
    assert reconcile().problems == []


def test_a_chargeback_of_spent_credit_never_overdraws_holds_the_keys_and_a_top_up_pays_it(
    payments, buyer, alice, django_capture_on_commit_callbacks
):
    order = paid_order(payments, buyer)
    _key, raw = api_keys.create_key(alice, "laptop")
    ledger.grant(user_id=alice.pk, amount=Decimal("-3.5"), memo="spent on calls", actor="test")  # $1.50 left
    # The buyer disputes the payment with their bank: Stripe tells TokenHub.
    dispute = {"id": "dp_1", "object": "dispute", "amount": 500, "currency": "usd", "payment_intent": order.payment_ref}
    payload = signing.stripe_event("charge.dispute.created", dispute)
    assert post_stripe(Client(), payments, payload).status_code == 200
    order.refresh_from_db()
    alice.refresh_from_db()
    assert order.status == OrderStatus.DISPUTED and ledger.balance_of(alice.pk) == 0
    assert (order.debited_usd, order.unrecovered_usd) == (Decimal("5"), Decimal("3.5"))
    assert alice.payment_hold
    identity = api_keys.lookup(raw)
    assert identity.payment_hold and "on hold" in identity.refusal()
    refused = Client().post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "account_on_hold"
    assert "$3.50" in buyer.get(f"/payments/orders/{order.code}/").content.decode()
    assert reconcile().problems == []
    # A new top-up pays the $3.50 first; the account's keys work again.
    with django_capture_on_commit_callbacks(execute=True):  # the cached key identities are dropped on commit
        second = paid_order(payments, buyer)
    alice.refresh_from_db()
    assert ledger.balance_of(alice.pk) == Decimal("1.5") and not alice.payment_hold
    assert PaymentOrder.objects.get(pk=order.pk).unrecovered_usd == 0 and second.status == OrderStatus.PAID
    assert api_keys.lookup(raw).refusal() is None
    assert reconcile().problems == []


def test_staff_may_forgive_a_shortfall(payments, buyer, alice):
    order = paid_order(payments, buyer)
    ledger.grant(user_id=alice.pk, amount=Decimal("-5"), memo="spent", actor="test")
    payload = signing.stripe_event(
        "charge.refunded",
        {
            "id": "ch_1",
            "object": "charge",
            "amount_refunded": 500,
            "currency": "usd",
            "payment_intent": order.payment_ref,
        },
    )
    post_stripe(Client(), payments, payload)
    alice.refresh_from_db()
    assert alice.payment_hold
    orders.waive(PaymentOrder.objects.get(pk=order.pk), actor="admin:root")
    alice.refresh_from_db()
    order.refresh_from_db()
    assert not alice.payment_hold and (order.unrecovered_usd, order.waived_usd) == (0, Decimal("5"))
    assert reconcile().problems == []


def test_reconcile_finds_a_credit_without_a_paid_order_and_a_paid_order_without_its_credit(payments, buyer, alice):
    from billing.ledger import topups

    order = paid_order(payments, buyer)
    topups.credit(order_code="thnotanorder", user_id=alice.pk, amount=Decimal("9"), memo="forged")
    PaymentOrder.objects.filter(pk=order.pk).update(credit=None)
    problems = " ".join(reconcile().problems)
    assert "top-up transaction" in problems and "thnotanorder" in problems
    assert f"order {order.code} is paid but has no credit transaction" in problems


def test_an_order_is_its_buyers_alone(payments, buyer, bob):
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    stranger = Client()
    sign_in(stranger, bob)
    assert stranger.get(f"/payments/orders/{order.code}/").status_code == 404
    assert order.code not in stranger.get("/payments/orders/").content.decode()


def test_the_receipt_is_mailed_in_the_buyers_language(payments, buyer, alice, inbox):
    from accounts.models import User
    from tests.mail import body_of

    User.objects.filter(pk=alice.pk).update(language="zh-hans")
    checkout(buyer, plan(), "stripe")
    order = latest_order()
    post_stripe(Client(), payments, stripe_paid(payments, order))
    [receipt] = inbox.wait_for(1, alice.email)
    assert receipt["Subject"] == f"收据：$5 额度（{order.code}）"
    assert "我们已收到你支付的 5.00 USD" in body_of(receipt) and f"/payments/orders/{order.code}/" in body_of(receipt)


def test_the_statement_shows_top_ups_beside_usage(payments, buyer):
    order = paid_order(payments, buyer)
    page = buyer.get("/statement/").content.decode()
    assert f"Top-up: {order.code}" in page and "5.00 USD" in page
    chinese = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    sign_in(chinese, buyer.user)
    assert f"充值: {order.code}" in chinese.get("/statement/").content.decode()


def test_a_flood_of_forged_notifications_is_logged_but_stored_only_up_to_the_hourly_limit(payments, settings):
    settings.TOKENHUB_REFUSED_NOTICES_PER_HOUR = 3
    for _ in range(6):
        assert Client().post("/payments/stripe/webhook/", "{}", content_type="application/json").status_code == 400
    assert PaymentEvent.objects.filter(outcome="refused").count() == 3


def test_staff_refund_ask_and_forgive_from_the_admin(payments, buyer, alice, admin_user):
    order = paid_order(payments, buyer)
    pending_client = checkout(buyer, plan(name="Second"), "stripe")
    assert pending_client.status_code == 302
    pending = latest_order()
    httpx.post(f"{gateway()}/_control/stripe/{pending.provider_ref}/paid?notify=0")
    staff = Client()
    sign_in(staff, admin_user)
    changelist = "/admin/billing/paymentorder/"
    asked = staff.post(changelist, {"action": "ask_provider", "_selected_action": [pending.pk]}, follow=True)
    assert "1 order asked, 1 credited." in asked.content.decode()
    ledger.grant(user_id=alice.pk, amount=Decimal("-7"), memo="spent", actor="test")  # $3 of $10 left
    refunded = staff.post(changelist, {"action": "refund_in_full", "_selected_action": [order.pk]}, follow=True)
    assert "1 order refunded." in refunded.content.decode()
    order.refresh_from_db()
    alice.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED and order.unrecovered_usd == Decimal("2") and alice.payment_hold
    listed = staff.get(changelist + "?owing=yes").content.decode()
    assert order.code in listed and pending.code not in listed
    staff.post(changelist, {"action": "waive_shortfall", "_selected_action": [order.pk]})
    alice.refresh_from_db()
    assert not alice.payment_hold and ledger.balance_of(alice.pk) == 0
    assert reconcile().problems == []
    page = staff.get(f"/admin/billing/paymentorder/{order.pk}/change/").content.decode()
    assert "taken back" in page and payments.stripe_secret_key not in page


def test_refunds_made_at_alipay_and_at_wechat_pay_take_the_credit_back_once(payments, buyer, alice):
    alipay_order = paid_order(payments, buyer, "alipay")
    refund = alipay_paid(payments, alipay_order, notify_id="r1", refund_fee="18.00", gmt_refund="2026-12-04 13:00:00")
    for _ in range(2):  # resent: the running total is the same, nothing is taken twice
        assert post_alipay(Client(), refund).content == b"success"
    alipay_order.refresh_from_db()
    assert alipay_order.refunded_amount == Decimal("18.00") and ledger.balance_of(alice.pk) == Decimal("2.5")
    wechat_order = paid_order(payments, buyer, "wechat")
    resource = {
        "mchid": payments.wechat_mchid,
        "out_trade_no": wechat_order.code,
        "out_refund_no": "made-in-the-merchant-platform",
        "refund_status": "SUCCESS",
        "amount": {"total": 3600, "refund": 3600, "currency": "CNY"},
    }
    body = signing.wechat_notification(payments.wechat_apiv3_key, "REFUND.SUCCESS", resource)
    assert answer_of(post_wechat(Client(), payments, body))["code"] == "SUCCESS"
    wechat_order.refresh_from_db()
    assert wechat_order.status == OrderStatus.REFUNDED and ledger.balance_of(alice.pk) == Decimal("2.5")
    assert reconcile().problems == []
