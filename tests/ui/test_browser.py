"""The main journeys in a real Chromium (Debian's, driven by Playwright), against the production
stack in a subprocess, a real Celery worker and the fake upstream. Screenshots of the main pages
land in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from billing import codes
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.mail import body_of, smtp_server
from tests.servers import ROOT, asgi_server, celery_worker

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "a long browser passphrase 31"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_up(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.test")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("main button[type=submit]")
    try:
        page.wait_for_url(re.compile(r".*/accounts/keys/$"), timeout=15000)
    except Exception:
        shoot(page, f"failed-sign-up-{username}")
        raise


def totp_now(secret: str) -> str:
    """The code an authenticator app shows for this base32 key now."""
    from base64 import b32decode

    from django_otp.oath import totp

    return f"{totp(b32decode(secret + '=' * (-len(secret) % 8))):06d}"


def journey(base: str, upstream: str, code: str, inbox) -> dict:
    """Runs in its own thread: Playwright's sync API must not share a thread with the ORM."""
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        owner = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_up(owner, base, "owner1")
        owner.goto(f"{base}/channels/")
        owner.fill("#id_name", "spare quota")
        owner.select_option("#id_provider", "openai-compatible")
        owner.fill("#id_base_url", upstream)
        owner.fill("#id_upstream_keys", "sk-upstream-browser-5678")
        owner.fill("#id_model_names", "gpt-4o-mini")
        owner.fill("#id_cut_percent", "25")
        owner.click("form[action='/channels/'] button[type=submit]")
        owner.wait_for_url(re.compile(r".*/channels/ch_[^/]+/$"))
        assert "sk-upstream-browser-5678" not in owner.content()
        owner.click("text=Test now")
        expect(owner.get_by_test_id("test-result")).to_contain_text("ok", timeout=10000)
        shoot(owner, "channel-detail")

        caller_context = browser.new_context(viewport={"width": 1280, "height": 900})
        caller_context.grant_permissions(["clipboard-read", "clipboard-write"])
        caller = caller_context.new_page()
        sign_up(caller, base, "caller1")
        caller.goto(f"{base}/balance/")
        expect(caller.locator("#checkin")).to_contain_text("verify your e-mail address")  # not yet
        [welcome] = inbox.wait_for(1, "caller1@example.test")  # through Celery and SMTP
        caller.goto(re.search(r"https?://\S+/accounts/email/verify/\S+/", body_of(welcome)).group(0))
        expect(caller.locator("main")).to_contain_text("caller1@example.test is verified")
        caller.goto(f"{base}/balance/")
        caller.click("text=Check in for")
        expect(caller.locator("#checkin")).to_contain_text("being added")
        caller.fill("#id_code", code)
        caller.click("form[action='/balance/redeem/'] button[type=submit]")
        expect(caller.locator(".messages")).to_contain_text("Code redeemed")
        caller.reload()
        expect(caller.locator("#checkin")).to_contain_text("Checked in today", timeout=10000)
        shoot(caller, "balance")
        caller.goto(f"{base}/accounts/keys/")
        caller.fill("#id_name", "laptop")
        caller.click("form[action='/accounts/keys/'] button[type=submit]")
        key = caller.get_by_test_id("new-key").inner_text().strip()
        caller.click("button[data-copy='#new-key']")
        assert caller.evaluate("navigator.clipboard.readText()") == key
        shoot(caller, "api-keys")

        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from a browser test"}]
        )
        seen["reply"] = reply.choices[0].message.content
        seen["request_id"] = reply._request_id if hasattr(reply, "_request_id") else None

        # The settlement follows the answer: wait until the call is on the books, then look.
        deadline = time.monotonic() + 15
        while not httpx.get(f"{base}/v1/usage", headers={"authorization": f"Bearer {key}"}).json()["data"]:
            assert time.monotonic() < deadline, "the call was never settled"
            time.sleep(0.1)
        caller.goto(f"{base}/usage/")
        expect(caller.locator("#usage-table")).to_contain_text("gpt-4o-mini", timeout=10000)
        caller.select_option("select[name=status]", "failed")
        expect(caller.locator("#usage-table")).to_contain_text("0 calls")
        caller.select_option("select[name=status]", "")
        expect(caller.locator("#usage-table")).to_contain_text("1 call")
        shoot(caller, "usage")
        caller.goto(f"{base}/dashboard/")
        shoot(caller, "dashboard")
        caller.set_viewport_size({"width": 390, "height": 844})
        shoot(caller, "dashboard-phone")
        caller.set_viewport_size({"width": 1280, "height": 900})
        for path, name in (("/statement/", "statement"), ("/models/", "catalog"), ("/docs/", "docs")):
            caller.goto(base + path)
            shoot(caller, name)

        owner.goto(f"{base}/earnings/")
        expect(owner.get_by_text("Calls served")).to_be_visible()
        seen["earnings_text"] = owner.get_by_test_id("earnings").inner_text()
        shoot(owner, "earnings")
        owner.goto(f"{base}/channels/")
        shoot(owner, "channels")

        # Two-factor sign-in: set up from the settings page with the key shown there, then a log-in in two steps.
        owner.goto(f"{base}/accounts/settings/")
        owner.fill("#id_setup_password", PASSWORD)
        owner.click("text=Set up two-factor sign-in")
        expect(owner.locator("figure.qr svg")).to_be_visible()
        secret = owner.get_by_test_id("totp-secret").inner_text().strip()
        owner.fill("#two-factor #id_code", totp_now(secret))
        owner.click("#two-factor button[type=submit]")
        expect(owner.get_by_test_id("recovery-codes")).to_be_visible()
        recovery = owner.get_by_test_id("recovery-codes").inner_text().split()
        shoot(owner, "settings-two-factor")
        owner.click("text=Log out")
        owner.goto(f"{base}/accounts/login/")
        owner.fill("#id_username", "owner1")
        owner.fill("#id_password", PASSWORD)
        owner.click("main button[type=submit]")
        owner.wait_for_url(re.compile(r".*/accounts/login/verify/$"))
        owner.fill("#id_code", recovery[0])
        owner.click("main button[type=submit]")
        expect(owner.locator(".messages")).to_contain_text("recovery code; 9 left")
        seen["recovery_codes"] = len(recovery)
        browser.close()
    return seen


def test_sign_up_key_call_usage_channel_checkin_redeem_and_earnings(fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    batch = codes.create_batch(label="browser", amount=Decimal("5"), count=1, expires_at=None, created_by="test")
    codes.fill_batch(batch.pk)
    code = batch.codes.get().code
    with smtp_server() as (inbox, port):
        mail_env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port)}
        server = asgi_server(TOKENHUB_ROUTING_CHECK_SECONDS="0", **mail_env)
        with server as base, celery_worker(**mail_env), ThreadPoolExecutor(1) as pool:
            seen = pool.submit(journey, base, fake_upstream, code, inbox).result(timeout=180)
    assert seen["reply"].startswith("alpha bravo") and seen["recovery_codes"] == 10
    assert Decimal(seen["earnings_text"].lstrip("$")) > 0
    for name in (
        "dashboard",
        "dashboard-phone",
        "api-keys",
        "usage",
        "balance",
        "channel-detail",
        "earnings",
        "catalog",
        "docs",
        "settings-two-factor",
    ):
        assert (SHOTS / f"{name}.png").stat().st_size > 5000, name
    assert Path(SHOTS).is_dir()
