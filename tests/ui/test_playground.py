"""The playground in a real Chromium: pick a model, send, watch the answer stream in, see its tokens and
cost; billed like any call, through a relay key named "Playground" made on first use and kept by the
browser (a second visit makes no new key)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from accounts.models import ApiKey
from billing.models import UsageRecord
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel
from tests.servers import asgi_server
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, shoot, sign_up

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chat(base: str) -> dict:
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"problems": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.on("console", lambda m: m.type == "error" and seen["problems"].append(m.text))
        sign_up(page, base, "tinkerer")
        page.get_by_role("link", name="Playground").click()
        page.select_option("#pg-model", "gpt-4o-mini")
        page.click("#pg-send")
        expect(page.get_by_test_id("playground-cost")).to_contain_text("$", timeout=15000)
        seen["answer"] = page.get_by_test_id("playground-output").inner_text()
        seen["tokens"] = page.get_by_test_id("playground-tokens").inner_text()
        seen["cost"] = page.get_by_test_id("playground-cost").inner_text()
        seen["request_id"] = page.get_by_test_id("playground-request-id").inner_text()
        shoot(page, "playground")
        page.reload()
        page.click("#pg-send")  # the browser's key again
        expect(page.get_by_test_id("playground-request-id")).not_to_have_text(seen["request_id"], timeout=15000)
        expect(page.get_by_test_id("playground-cost")).to_contain_text("$", timeout=15000)
        page.set_viewport_size({"width": 390, "height": 844})
        seen["phone_overflow"] = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        browser.close()
    return seen


def test_the_playground_streams_an_answer_and_bills_it_with_its_own_key(fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    from tests.conftest import make_user

    add_channel(make_user("lender"), fake_upstream, models=("gpt-4o-mini",), name="lent")
    server = asgi_server(TOKENHUB_ROUTING_CHECK_SECONDS="0", TOKENHUB_SIGNUP_GRANT_USD="1")
    with server as base, ThreadPoolExecutor(1) as pool:
        seen = pool.submit(chat, base).result(timeout=120)
    assert seen["problems"] == [] and seen["answer"].startswith("alpha bravo")
    assert seen["tokens"].endswith(" out") and seen["phone_overflow"] <= 0
    [key] = ApiKey.objects.filter(name="Playground", revoked_at__isnull=True)  # one key, made once
    assert key.scope == "relay" and key.user.username == "tinkerer"
    deadline = time.monotonic() + 10
    while UsageRecord.objects.filter(api_key=key).count() < 2:
        assert time.monotonic() < deadline, "the calls were not settled"
        time.sleep(0.1)
    first = UsageRecord.objects.get(request_id=seen["request_id"])
    assert Decimal(seen["cost"].lstrip("$")) == first.cost_usd > 0  # the page says what the ledger booked
