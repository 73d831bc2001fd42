"""Every page in a real Chromium, in both languages, at desktop and phone width: no console error, no
missing resource, nothing wider than the screen, and no accessibility violation axe-core finds (WCAG 2 A
and AA: labels, names, contrast, landmarks, keyboard-reachable controls); screenshots are kept under
test-artifacts/screenshots/pages/."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from accounts.models import User
from billing import ledger
from billing.models import ExchangeRate, PaymentOrder, Plan, TransactionKind, UsageRecord
from channels_app.catalog import import_catalog
from devtools.fake_payments.signing import Keys
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel
from tests.servers import ROOT, asgi_server
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SHOTS

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = ROOT / ".agents" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
LANGUAGES = {"en": "en-US,en;q=0.9", "zh": "zh-CN,zh;q=0.9"}
PUBLIC = ["/", "/models/", "/pricing/", "/docs/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
SIGNED_IN = [
    "/dashboard/",
    "/accounts/keys/",
    "/usage/",
    "/balance/",
    "/statement/",
    "/earnings/",
    "/channels/",
    "/channels/{channel}/",
    "/playground/",
    "/accounts/settings/",
    "/accounts/activity/",
    "/pricing/",
    "/payments/orders/",
    "/payments/orders/{order}/",
]


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/$"))


def survey(base: str, channel: str, order: str) -> dict:
    from playwright.sync_api import sync_playwright

    found: dict = {"problems": [], "visits": 0}
    axe = AXE.read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for language, header in LANGUAGES.items():
            for width, viewport in WIDTHS.items():
                # bypass_csp: only so the test can add axe to the page; the site's own pages run under theirs.
                context = browser.new_context(
                    viewport=viewport, extra_http_headers={"Accept-Language": header}, bypass_csp=True
                )
                page = context.new_page()
                where = {"path": ""}
                page.on(
                    "console",
                    lambda m, where=where: m.type == "error" and found["problems"].append(f"{where['path']}: {m.text}"),
                )
                page.on(
                    "response",
                    lambda r, where=where: (
                        r.status >= 400 and found["problems"].append(f"{where['path']}: {r.status} {r.url}")
                    ),
                )
                for signed_in, paths in ((False, PUBLIC), (True, SIGNED_IN)):
                    if signed_in:
                        log_in(page, base, "surveyor")
                    for path in paths:
                        path = path.format(channel=channel, order=order)
                        where["path"] = f"{language}/{width} {path}"
                        page.goto(base + path)
                        found["visits"] += 1
                        check(page, where["path"], language, axe, found)
                        name = re.sub(r"[^a-z0-9]+", "-", path).strip("-") or "home"
                        page.screenshot(path=str(SHOTS / "pages" / f"{name}-{language}-{width}.png"), full_page=True)
                context.close()
        browser.close()
    return found


def check(page, where: str, language: str, axe: str, found: dict) -> None:
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if wider > 0:
        found["problems"].append(f"{where}: {wider}px wider than the screen")
    lang = page.evaluate("document.documentElement.lang")
    if lang != ("zh-Hans" if language == "zh" else "en"):
        found["problems"].append(f"{where}: <html lang={lang}>")
    footer = page.locator("footer").inner_text()  # the site's own words on every page (an h1 may be a name)
    if (language == "zh") != bool(re.search(r"[\u4e00-\u9fff]", footer)):
        found["problems"].append(f"{where}: footer {footer!r} is not in the page's language")
    page.add_script_tag(content=axe)
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']});"
        " return r.violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)})); }"
    )
    for violation in result:
        found["problems"].append(f"{where}: axe {violation['id']} at {json.dumps(violation['nodes'])}")


def test_every_page_in_both_languages_at_both_widths():
    assert AXE.exists(), "axe-core is installed by scripts/ensure-agents"
    (SHOTS / "pages").mkdir(parents=True, exist_ok=True)
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    from tests.conftest import make_user

    user = make_user("surveyor")
    user.set_password(PASSWORD)
    user.save()
    ledger.grant(user_id=user.pk, amount=Decimal("3"), memo="t", actor="test", kind=TransactionKind.GRANT)
    channel = add_channel(user, "http://127.0.0.1:9/v1", models=("gpt-4o-mini",), name="surveyed")
    UsageRecord.objects.create(
        request_id="req_" + "a" * 40, user=User.objects.get(pk=user.pk), model="gpt-4o-mini", status="ok", cost_usd=1
    )
    plan = Plan.objects.create(name="Starter", name_zh="入门", price=Decimal("5.00"), credit_usd=Decimal("5"))
    ExchangeRate.objects.create(currency="USD", cny_per_unit=Decimal("7.2"))
    order = PaymentOrder.objects.create(
        code="thsurveyedorder",
        user=user,
        plan=plan,
        provider="alipay",
        amount=Decimal("36.00"),
        currency="CNY",
        credit_usd=Decimal("5"),
        plan_price=Decimal("5.00"),
        plan_currency="USD",
        exchange_rate=Decimal("7.2"),
        qr_content="https://qr.alipay.com/bax0000000000000000000000",
    )
    # Every provider configured (nothing is called by these pages), so the pricing page shows each method.
    payments = Keys.generate().tokenhub_env("http://127.0.0.1:9")
    with asgi_server(**payments) as base, ThreadPoolExecutor(1) as pool:
        found = pool.submit(survey, base, channel.public_id, order.code).result(timeout=300)
    assert found["visits"] == len(LANGUAGES) * len(WIDTHS) * (len(PUBLIC) + len(SIGNED_IN))
    assert found["problems"] == [], "\n".join(found["problems"])
