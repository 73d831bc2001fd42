"""Buying credit in a real Chromium: the pricing page → Stripe's checkout (the fake provider's page) → back on
the order page, paid; and an Alipay QR code paid from another device while the order page watches."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from billing import ledger
from billing.models import ExchangeRate, OrderStatus, PaymentOrder, Plan
from devtools.fake_payments.signing import Keys
from tests.servers import asgi_server, fake_payments, free_port
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, shoot

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def buy(base: str) -> dict:
    """Runs in its own thread: Playwright's sync API must not share a thread with the ORM."""
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/accounts/login/?next=/pricing/")
        page.fill("#id_username", "buyer")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r".*/pricing/$"))
        shoot(page, "pricing")
        # Card: off to Stripe's checkout page, pay, and back on the order page, paid.
        card = page.locator("[data-testid=plan]").first
        card.get_by_label(re.compile(r"Card \(Stripe\)")).check()
        card.get_by_role("button", name="Buy").click()
        page.wait_for_url(re.compile(r".*/pay/stripe/cs_test_\w+$"))
        seen["checkout_title"] = page.title()
        page.click("#pay")
        page.wait_for_url(re.compile(r".*/payments/orders/th\w+/\?check=1$"))
        expect(page.locator("[data-testid=order-status]")).to_have_attribute("data-status", "paid")
        shoot(page, "order-paid")
        # Alipay: a QR code; the buyer's phone pays it; the order page notices by itself.
        page.goto(f"{base}/pricing/")
        card = page.locator("[data-testid=plan]").first
        card.get_by_label(re.compile(r"Alipay")).check()
        card.get_by_role("button", name="Buy").click()
        page.wait_for_url(re.compile(r".*/payments/orders/th\w+/$"))
        expect(page.locator("figure.qr svg")).to_be_visible()
        shoot(page, "order-qr")
        seen["qr_order"] = page.url.rstrip("/").rsplit("/", 1)[1]
        # Paid elsewhere (a phone scanning the code; here Alipay's web cashier in another window).
        cashier = page.get_by_role("link", name="Pay on the provider's page").get_attribute("href")
        phone = browser.new_context().new_page()
        phone.goto(cashier)
        phone.click("#pay")
        expect(page.locator("[data-testid=order-status]")).to_have_attribute("data-status", "paid", timeout=15000)
        browser.close()
    return seen


def test_buying_credit_by_card_and_by_alipay_in_a_browser():
    from tests.conftest import make_user

    buyer = make_user("buyer")
    buyer.set_password(PASSWORD)
    buyer.save()
    Plan.objects.create(name="Starter", name_zh="入门", price=Decimal("5.00"), credit_usd=Decimal("5"))
    ExchangeRate.objects.create(currency="USD", cny_per_unit=Decimal("7.2"))
    keys = Keys.generate()
    gateway_port = free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    with asgi_server(**keys.tokenhub_env(gateway)) as base:
        webhook = f"{base}/payments/stripe/webhook/"
        with fake_payments(keys.to_json(), port=gateway_port, stripe_webhook=webhook), ThreadPoolExecutor(1) as pool:
            seen = pool.submit(buy, base).result(timeout=180)
    assert "Stripe Checkout" in seen["checkout_title"]
    paid = PaymentOrder.objects.filter(user=buyer, status=OrderStatus.PAID)
    assert sorted(paid.values_list("provider", flat=True)) == ["alipay", "stripe"]
    assert ledger.balance_of(buyer.pk) == Decimal("10")
