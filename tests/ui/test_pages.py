"""The pages: each works for its owner, answers 404 to strangers, redirects the anonymous,
and shows form errors in place."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import keys
from billing import ledger
from billing.models import Payout, TransactionKind, UsageRecord
from billing.pricing import Prices, Usage
from channels_app.models import Channel, ChannelStatus
from tests.channels.conftest import make_channel
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db
MINI = Prices(input=Decimal("0.15"), output=Decimal("0.6"))


def logged_in(user) -> Client:
    client = Client()
    sign_in(client, user)
    return client


def a_call(user, owner, channel, request_id="r1", model="gpt-4o-mini", output=20):
    key = keys.create_key(user, f"k-{request_id}")[0]
    ledger.hold(
        user_id=user.pk, amount=Decimal("0.01"), request_id=request_id, api_key_id=key.pk, prices=MINI, model=model
    )
    return ledger.settle(
        request_id=request_id,
        usage=Usage(input_tokens=10, output_tokens=output),
        owner_id=owner.pk,
        owner_cut=channel.owner_cut,
        model=model,
        channel=channel.public_id,
        latency_ms=42,
    )


@pytest.fixture
def busy(alice, bob, catalog):
    ledger.grant(user_id=alice.pk, amount=Decimal("5"), memo="welcome", actor="t", kind=TransactionKind.GRANT)
    channel = make_channel(bob, models=["gpt-4o-mini"], name="bob's spare")
    a_call(alice, bob, channel, "req_alice_first")
    a_call(alice, bob, channel, "req_alice_second", output=5)
    return channel


@pytest.mark.parametrize(
    "name",
    [
        "billing:dashboard",
        "billing:usage",
        "billing:wallet",
        "billing:statement",
        "billing:earnings",
        "channels:list",
        "accounts:keys",
    ],
)
def test_private_pages_redirect_the_anonymous(name):
    response = Client().get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_dashboard_shows_balance_spend_chart_and_recent_calls(alice, busy):
    page = logged_in(alice).get(reverse("billing:dashboard")).content.decode()
    assert "<svg" in page and "gpt-4o-mini" in page and "req_alice_second" in page
    assert f"${ledger.balance_of(alice.pk):.4f}" in page


def test_usage_log_filters_paginates_with_htmx_and_exports_csv(alice, busy):
    client = logged_in(alice)
    full = client.get(reverse("billing:usage")).content.decode()
    assert "2 calls" in full and busy.public_id not in full  # channels anonymised for callers
    partial = client.get(reverse("billing:usage"), {"status": "failed"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and "0 calls" in body
    bad = client.get(reverse("billing:usage"), {"start": "2026-02-10", "end": "2026-01-01"}).content.decode()
    assert "The end date is before the start date." in bad
    exported = client.get(reverse("billing:usage_csv"), {"model": "gpt-4o-mini"})
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {r["request_id"] for r in rows} == {"req_alice_first", "req_alice_second"} and rows[0]["cost_usd"]


def test_statement_lists_every_ledger_movement(alice, bob, busy):
    page = logged_in(alice).get(reverse("billing:statement")).content.decode()
    assert "Credit granted: welcome" in page and "Call settled" in page and "Call started" in page
    owner_page = logged_in(bob).get(reverse("billing:statement")).content.decode()
    assert "Earned from a call on your channel" in owner_page


def test_owner_earnings_move_to_balance_and_payout(bob, busy):
    client = logged_in(bob)
    page = client.get(reverse("billing:earnings")).content.decode()
    earned = ledger.earnings_of(bob.pk)
    assert earned > 0 and busy.public_id in page and "Calls served" in page
    too_much = client.post(reverse("billing:request_payout"), {"amount": "99", "destination": "IBAN"})
    assert too_much.status_code == 400 and "at most your available earnings" in too_much.content.decode()
    half = (earned / 2).quantize(Decimal("0.00000001"))
    client.post(reverse("billing:move_earnings"), {"amount": str(half)})
    assert ledger.balance_of(bob.pk) == half
    client.post(reverse("billing:request_payout"), {"amount": str(earned - half), "destination": "IBAN DE00"})
    assert Payout.objects.get(owner=bob).amount == earned - half and ledger.earnings_of(bob.pk) == 0


def test_add_channel_form_validates_in_place_and_never_shows_the_key(bob, catalog):
    client = logged_in(bob)
    bad = client.post(
        reverse("channels:list"),
        {
            "name": "x",
            "provider": "openai",
            "base_url": "http://10.0.0.1/v1",
            "upstream_keys": "",
            "model_names": "gpt-4o-mini",
            "cut_percent": "70",
            "priority": "0",
            "weight": "1",
        },
    )
    page = bad.content.decode()
    assert bad.status_code == 400 and "Give at least one upstream key." in page and "less than or equal to 50" in page
    ok = client.post(
        reverse("channels:list"),
        {
            "name": "spare",
            "provider": "openai-compatible",
            "base_url": "http://127.0.0.1:9/v1",
            "upstream_keys": "sk-live-very-secret-9876",
            "model_names": "gpt-4o-mini, deepseek-chat",
            "model_mapping": "deepseek-chat=deepseek/deepseek-chat",
            "cut_percent": "25",
            "priority": "2",
            "weight": "3",
        },
    )
    channel = Channel.objects.get(name="spare")
    assert (
        ok.status_code == 302
        and channel.owner_cut == Decimal("0.25")
        and channel.model_mapping == {"deepseek-chat": "deepseek/deepseek-chat"}
    )
    detail = client.get(reverse("channels:detail", args=[channel.public_id])).content.decode()
    assert "sk-live-very-secret-9876" not in detail and "…9876" in detail


def test_strangers_get_404_for_someone_elses_channel(bob, carol, catalog):
    channel = make_channel(bob)
    client = logged_in(carol)
    for name in ("channels:detail",):
        assert client.get(reverse(name, args=[channel.public_id])).status_code == 404
    for name in ("channels:test", "channels:toggle"):
        assert client.post(reverse(name, args=[channel.public_id])).status_code == 404
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE and channel.last_test_at is None
    assert channel.name not in client.get(reverse("channels:list")).content.decode()


def test_pause_and_resume(bob, catalog):
    channel = make_channel(bob)
    client = logged_in(bob)
    client.post(reverse("channels:toggle", args=[channel.public_id]))
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.PAUSED
    client.post(reverse("channels:toggle", args=[channel.public_id]))
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE


def test_public_catalog_shows_prices_aliases_and_availability(bob, catalog):
    make_channel(bob, models=["deepseek-chat"])
    from channels_app import routing

    routing.invalidate()
    page = Client().get(reverse("channels:catalog")).content.decode()
    assert "deepseek/deepseek-chat" in page and "$0.28" in page and "$15" in page
    available = (
        Client().get(reverse("channels:catalog"), {"available": "1"}, headers={"HX-Request": "true"}).content.decode()
    )
    assert "deepseek-chat" in available and "claude-sonnet-4-5" not in available and "<html" not in available


def test_docs_page_gives_base_urls_snippets_and_error_codes():
    page = Client().get(reverse("docs")).content.decode()
    assert 'base_url="http://testserver/v1"' in page and 'Anthropic(base_url="http://testserver"' in page
    assert "402" in page and "retry-after" in page


def test_usage_belongs_to_its_user(alice, carol, busy):
    page = logged_in(carol).get(reverse("billing:usage")).content.decode()
    assert "0 calls" in page and "req_alice_first" not in page  # (a short id could occur in the CSRF token)
    assert UsageRecord.objects.filter(user=alice).count() == 2


def test_admin_marks_payouts_paid_or_rejected_and_the_ledger_records_it(admin_user, bob, busy):
    earned = ledger.earnings_of(bob.pk)
    half = (earned / 2).quantize(Decimal("0.00000001"))
    first = ledger.request_payout(owner_id=bob.pk, amount=half, destination="IBAN")
    second = ledger.request_payout(owner_id=bob.pk, amount=earned - half, destination="IBAN")
    client = logged_in(admin_user)
    url = reverse("admin:billing_payout_changelist")
    client.post(url, {"action": "mark_paid", "_selected_action": [first.pk]})
    client.post(url, {"action": "mark_rejected", "_selected_action": [second.pk]})
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, first.decided_by, second.status) == ("paid", "admin:root", "rejected")
    assert ledger.earnings_of(bob.pk) == earned - half  # the rejected one came back
    from billing.reconcile import reconcile

    assert reconcile().problems == []


def test_admin_channel_actions_and_every_model_has_an_admin_page(admin_user, bob, catalog, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["good"])
    client = logged_in(admin_user)
    url = reverse("admin:channels_app_channel_changelist")
    client.post(url, {"action": "disable", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.SUSPENDED and channel.status_reason == "suspended by staff"
    client.post(url, {"action": "enable", "_selected_action": [channel.pk]})
    response = client.post(url, {"action": "test", "_selected_action": [channel.pk]}, follow=True)
    assert "HTTP 200" in response.content.decode()
    from django.apps import apps
    from django.contrib import admin

    inline_only = {"channelkey", "entry"}  # shown inside their channel / transaction, masked where secret
    for model in apps.get_models():
        if (
            model._meta.app_label in ("accounts", "billing", "channels_app")
            and model._meta.model_name not in inline_only
        ):
            assert admin.site.is_registered(model), model
            page = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
            assert page.status_code == 200, model
