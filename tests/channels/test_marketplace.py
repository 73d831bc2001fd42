"""The models page as the marketplace's front window (channels_app/marketplace.py): prices written one way,
context lengths with separators, how many channels serve each model for this visitor, the success rate
and median latency of the last 24 hours' calls, filters by provider and capability; the home page shows
the models available now with the SDK snippet."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageRecord, UsageStatus
from channels_app import catalog
from channels_app.models import CatalogModel
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel
from tokenhub.templatetags.money import price, thousands

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(bob, carol):
    catalog.import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    add_channel(bob, "http://127.0.0.1:9/v1", models=("gpt-4o-mini",), name="public one")
    add_channel(bob, "http://127.0.0.1:9/v1", models=("gpt-4o-mini", "gpt-4o"), name="public two")
    hidden = add_channel(bob, "http://127.0.0.1:9/v1", models=("deepseek-chat",), name="hidden", visibility="private")
    from channels_app import sharing

    sharing.share_with(hidden, "carol")
    now = timezone.now()
    calls = [("ok", 100), ("ok", 300), ("ok", 200), ("failed", 5)]
    for n, (status, latency) in enumerate(calls):
        UsageRecord.objects.create(
            request_id=f"m{n}", user=carol, model="gpt-4o-mini", status=status, latency_ms=latency, created_at=now
        )
    UsageRecord.objects.create(  # older than a day: not counted
        request_id="old", user=carol, model="gpt-4o-mini", status=UsageStatus.FAILED, created_at=now - timedelta(days=2)
    )


def test_prices_and_lengths_are_written_one_way():
    assert [price(Decimal(v)) for v in ("1", "0.28", "0.1", "0.075", "0.0375", "15.00")] == [
        "$1.00",
        "$0.28",
        "$0.10",
        "$0.075",
        "$0.0375",
        "$15.00",
    ]
    assert price(None) == "—" and thousands(128000) == "128,000" and thousands(None) == "—"


def test_the_models_page_shows_channels_success_and_latency_for_this_visitor(market, carol):
    visitor = Client().get(reverse("channels:catalog")).content.decode()
    assert "$0.15" in visitor and "$0.60" in visitor and "128,000" in visitor
    row = visitor.split("<code>gpt-4o-mini</code>")[1].split("</tr>")[0]
    assert '<span class="badge active">2</span>' in row  # two public channels
    assert "75.0 %" in row and "of 4" in row and "200 ms" in row  # 3 of 4 in 24 h; median of 100, 200, 300
    deepseek = visitor.split("<code>deepseek-chat</code>")[1].split("</tr>")[0]
    assert "none" in deepseek  # a private channel is nobody else's business
    shared = Client()
    shared.force_login(carol)
    theirs = shared.get(reverse("channels:catalog")).content.decode().split("<code>deepseek-chat</code>")[1]
    assert '<span class="badge active">1</span>' in theirs.split("</tr>")[0]


def test_filters_by_provider_capability_and_availability(market):
    def names(**query) -> list[str]:
        page = Client().get(reverse("channels:catalog"), query).content.decode()
        return [chunk.split("</code>")[0] for chunk in page.split("<tr>\n        <td><code>")[1:]]

    assert set(names(provider="anthropic")) == {"claude-haiku-4-5", "claude-sonnet-4-5"}
    assert "deepseek-chat" not in names(capability="vision") and "gpt-4o" in names(capability="vision")
    assert "text-embedding-3-small" in names(capability="embedding")
    assert names(available="1") == ["gpt-4o", "gpt-4o-mini"]
    assert CatalogModel.objects.get(name="claude-sonnet-4-5").all_capabilities == [
        "vision",
        "tools",
        "reasoning",
        "caching",
    ]


def test_a_catalog_row_with_an_unknown_capability_is_refused():
    report = catalog.import_catalog('{"models": [{"name": "m", "capabilities": ["telepathy"]}]}', "c.json")
    assert report.errors and "unknown capabilities" in report.errors[0]


def test_the_home_page_shows_what_is_available_and_how_to_call_it(market):
    page = Client().get(reverse("home")).content.decode()
    assert 'base_url="http://testserver/v1"' in page and "Available now" in page
    assert page.index("<code>gpt-4o-mini</code>") < page.index("<code>gpt-4o</code>")  # most channels first
    assert "deepseek-chat" not in page
