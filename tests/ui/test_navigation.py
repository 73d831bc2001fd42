"""The navigation, the phone menu and dark mode in a real Chromium: links grouped by what a person
does (Use, Earn), the current page marked, one menu button on a phone instead of wrapped links, the
system's colour scheme followed and the toggle remembered, no page wider than the screen, and no console
error or missing resource (the favicon) on the way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.servers import asgi_server
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, shoot, sign_up

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def visit(base: str) -> dict:
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"problems": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and seen["problems"].append(f"console: {m.text}"))
        page.on("response", lambda r: r.status >= 400 and seen["problems"].append(f"{r.status} {r.url}"))
        page.goto(f"{base}/accounts/login/")
        seen["login_background"] = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        sign_up(page, base, "navigator")
        page.goto(f"{base}/usage/")
        current = page.locator("#site-nav a[aria-current=page]")
        expect(current).to_have_count(1)
        seen["current"] = current.inner_text()
        seen["groups"] = page.locator("#site-nav .nav-label").all_text_contents()
        seen["desktop_overflow"] = overflow(page)
        seen["menu_button_visible_on_desktop"] = page.get_by_role("button", name="Menu").is_visible()

        toggle = page.locator("[data-theme-toggle]")
        seen["theme_before"] = toggle.inner_text()
        toggle.click()  # system → dark (already dark here: stays dark, now chosen)
        toggle.click()  # dark → light
        page.reload()
        seen["theme_after_reload"] = page.evaluate("document.documentElement.dataset.theme || ''")
        seen["light_background"] = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")

        page.set_viewport_size(PHONE)
        for path in ("/dashboard/", "/usage/", "/accounts/keys/", "/channels/", "/accounts/settings/", "/models/"):
            page.goto(base + path)
            if overflow(page) > 0:
                seen["problems"].append(f"{path} is {overflow(page)}px wider than a phone")
        nav_links = page.locator("#site-nav a")
        seen["links_visible_before_menu"] = nav_links.first.is_visible()
        menu = page.get_by_role("button", name="Menu")
        menu.click()
        seen["expanded"] = menu.get_attribute("aria-expanded")
        seen["links_visible_after_menu"] = page.get_by_role("link", name="Earnings").is_visible()
        shoot(page, "nav-phone-open")
        page.keyboard.press("Escape")
        seen["closed_by_escape"] = not page.get_by_role("link", name="Earnings").is_visible()
        browser.close()
    return seen


def test_navigation_phone_menu_and_dark_mode():
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    with asgi_server() as base, ThreadPoolExecutor(1) as pool:
        seen = pool.submit(visit, base).result(timeout=120)
    assert seen["problems"] == []
    assert seen["current"] == "Usage" and seen["groups"] == ["Use", "Earn"]
    assert seen["desktop_overflow"] <= 0 and not seen["menu_button_visible_on_desktop"]
    assert seen["login_background"] == "rgb(15, 18, 23)"  # the system's dark scheme, from the first page
    assert seen["theme_before"] == "Theme: system"
    assert seen["theme_after_reload"] == "light" and seen["light_background"] == "rgb(246, 247, 249)"
    assert not seen["links_visible_before_menu"] and seen["expanded"] == "true"
    assert seen["links_visible_after_menu"] and seen["closed_by_escape"]
