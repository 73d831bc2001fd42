"""The JSON API: every operation, both ways to authenticate, one error shape, and no way into
another user's objects."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts import keys
from billing import codes, ledger
from billing.models import TransactionKind
from billing.pricing import Prices, Usage
from channels_app.models import Channel, ChannelStatus
from tests.channels.conftest import make_channel
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db


def key_client(user, scope: str = "manage") -> tuple[Client, str]:
    """A client with a key; manage by default, since most of these calls manage the account."""
    _key, raw = keys.create_key(user, "api", scope=scope)
    return Client(headers={"authorization": f"Bearer {raw}"}), raw


def test_anonymous_and_bad_keys_get_the_one_error_shape():
    response = Client().get("/api/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    bad = Client(headers={"authorization": "Bearer sk-hub-" + "z" * 48}).get("/api/me")
    assert bad.status_code == 401


def test_session_auth_enforces_csrf_on_writes(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/me").json()["username"] == "alice"
    assert client.post("/api/keys", {"name": "x"}, content_type="application/json").status_code == 403
    client.get("/accounts/keys/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    created = client.post("/api/keys", {"name": "x"}, content_type="application/json", headers={"X-CSRFToken": token})
    assert created.status_code == 201


def test_keys_create_shown_once_list_and_revoke(alice, carol):
    client, _raw = key_client(alice)
    created = client.post(
        "/api/keys", {"name": "ci", "allowed_models": ["gpt-4o"], "spend_cap_usd": "5"}, content_type="application/json"
    )
    body = created.json()
    assert (
        created.status_code == 201
        and body["key"].startswith("sk-hub-")
        and body["api_key"]["spend_cap_usd"] == "5.00000000"
    )
    listed = client.get("/api/keys").json()
    assert {k["name"] for k in listed} == {"api", "ci"} and all("key" not in k and "key_hash" not in k for k in listed)
    public_id = body["api_key"]["public_id"]
    stranger, _ = key_client(carol)
    assert stranger.post(f"/api/keys/{public_id}/revoke").status_code == 404
    assert client.post(f"/api/keys/{public_id}/revoke").json()["status"] == "revoked"
    invalid = client.post("/api/keys", {"name": "", "spend_cap_usd": "-1"}, content_type="application/json")
    assert invalid.status_code == 422 and set(invalid.json()["error"]["fields"]) == {"name", "spend_cap_usd"}


def test_balance_usage_statement_checkin_and_redeem(alice, bob, carol, catalog):
    ledger.grant(user_id=alice.pk, amount=Decimal("3"), memo="gift", actor="t", kind=TransactionKind.GRANT)
    channel = make_channel(bob)
    key, _ = keys.create_key(alice, "calls")
    ledger.hold(
        user_id=alice.pk,
        amount=Decimal("0.01"),
        request_id="rq",
        api_key_id=key.pk,
        model="gpt-4o-mini",
        prices=Prices(input=Decimal("0.15"), output=Decimal("0.6")),
    )
    ledger.settle(
        request_id="rq",
        usage=Usage(input_tokens=10, output_tokens=20),
        owner_id=bob.pk,
        owner_cut=channel.owner_cut,
        model="gpt-4o-mini",
        channel=channel.public_id,
    )
    client, _ = key_client(alice)
    assert Decimal(client.get("/api/balance").json()["balance_usd"]) == ledger.balance_of(alice.pk)
    usage = client.get("/api/usage", {"model": "gpt-4o-mini", "per_page": 1}).json()
    assert (
        usage["count"] == 1
        and usage["results"][0]["request_id"] == "rq"
        and usage["results"][0]["api_key"] == key.public_id
    )
    assert client.get("/api/usage", {"status": "failed"}).json()["count"] == 0
    lines = client.get("/api/statement").json()["results"]
    assert {line["kind"] for line in lines} >= {"grant", "hold", "settle"}
    queued = client.post("/api/checkin")  # the grant itself runs through Celery (tests/billing/test_tasks_and_views.py)
    assert queued.status_code == 202 and queued.json()["state"] == "pending"
    ledger.checkin(user_id=alice.pk, day=timezone.now().date(), amount=Decimal("0.1"))
    assert client.post("/api/checkin").json()["state"] == "claimed"
    batch = codes.create_batch(label="b", amount=Decimal("2"), count=1, expires_at=None, created_by="t")
    codes.fill_batch(batch.pk)
    code = batch.codes.get().code
    assert (
        client.post("/api/redeem", {"code": code}, content_type="application/json").json()["amount_usd"] == "2.00000000"
    )
    again = client.post("/api/redeem", {"code": code}, content_type="application/json")
    assert again.status_code == 400 and again.json()["error"]["message"] == "That code has already been used."
    stranger, _ = key_client(carol)
    assert stranger.get("/api/usage").json()["count"] == 0 and stranger.get("/api/statement").json()["count"] == 0


def test_owner_channels_create_edit_test_pause_and_earnings(bob, carol, catalog, fake_upstream):
    client, _ = key_client(bob)
    bad = client.post(
        "/api/channels",
        {
            "name": "x",
            "provider": "openai",
            "base_url": "http://10.1.1.1/v1",
            "upstream_keys": ["k"],
            "model_names": ["gpt-4o-mini"],
        },
        content_type="application/json",
    )
    assert bad.status_code == 422 and "private or loopback" in bad.json()["error"]["message"]
    created = client.post(
        "/api/channels",
        {
            "name": "mine",
            "provider": "openai",
            "base_url": fake_upstream,
            "upstream_keys": ["secret-upstream-1234"],
            "model_names": ["gpt-4o-mini"],
            "owner_cut_percent": "30",
        },
        content_type="application/json",
    )
    channel = created.json()
    assert (
        created.status_code == 201 and channel["owner_cut_percent"] == "30.00" and channel["masked_keys"] == ["…1234"]
    )
    assert "secret-upstream-1234" not in created.content.decode()
    public_id = channel["public_id"]
    edited = client.patch(
        f"/api/channels/{public_id}",
        {"weight": 5, "model_names": ["gpt-4o-mini", "deepseek-chat"]},
        content_type="application/json",
    )
    assert edited.json()["weight"] == 5 and edited.json()["model_names"] == ["gpt-4o-mini", "deepseek-chat"]
    tested = client.post(f"/api/channels/{public_id}/test").json()
    assert tested["ok"] is True and tested["latency_ms"] >= 0
    assert client.post(f"/api/channels/{public_id}/pause").json()["status"] == ChannelStatus.PAUSED
    assert client.post(f"/api/channels/{public_id}/resume").json()["status"] == ChannelStatus.ACTIVE
    stranger, _ = key_client(carol)
    for method, path in (("patch", ""), ("post", "/test"), ("post", "/pause"), ("post", "/resume")):
        response = getattr(stranger, method)(f"/api/channels/{public_id}{path}", {}, content_type="application/json")
        assert response.status_code == 404, path
    assert stranger.get("/api/channels").json() == []
    assert Channel.objects.get(public_id=public_id).weight == 5
    earnings = client.get("/api/earnings").json()
    assert (earnings["calls"] == 0 and earnings["available_usd"] == "0E-8") or Decimal(earnings["available_usd"]) == 0


def test_payouts_through_the_api(bob, catalog):
    channel = make_channel(bob)
    from accounts.models import User

    payer = User.objects.create_user("payer")
    ledger.grant(user_id=payer.pk, amount=Decimal("10"), memo="t", actor="t", kind=TransactionKind.GRANT)
    ledger.hold(user_id=payer.pk, amount=Decimal("5"), request_id="big")
    ledger.settle(
        request_id="big",
        cost=Decimal("4"),
        usage=Usage(output_tokens=1),
        owner_id=bob.pk,
        owner_cut=Decimal("0.5"),
        channel=channel.public_id,
    )
    client, _ = key_client(bob)
    with_key = client.post("/api/payouts", {"amount_usd": "1", "destination": "x"}, content_type="application/json")
    assert with_key.status_code == 403 and "not requested with an API key" in with_key.json()["error"]["message"]
    session = Client()
    sign_in(session, bob)  # a session that showed bob's second factor
    too_much = session.post("/api/payouts", {"amount_usd": "3", "destination": "x"}, content_type="application/json")
    assert too_much.status_code == 400
    made = session.post("/api/payouts", {"amount_usd": "1.5", "destination": "IBAN"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["status"] == "pending"
    moved = client.post("/api/earnings/move", {}, content_type="application/json").json()
    assert Decimal(moved["balance_usd"]) == Decimal("0.5") and Decimal(moved["earnings_usd"]) == 0
    assert [p["amount"] for p in client.get("/api/payouts").json()] == ["1.50000000"]


@pytest.mark.parametrize(
    ("expires_at", "status"),
    [
        ("3173-01-25T15:57:21-19:23", 201),  # ISO 8601 allows offsets PostgreSQL does not: stored in UTC
        ("9999-12-31T23:00:00-05:00", 422),  # past the last datetime once in UTC
        ("2030-01-01T00:00:00", 422),  # no timezone
    ],
)
def test_a_key_expiry_in_any_offset_is_stored_in_utc_or_refused_clearly(alice, expires_at, status):
    client, _raw = key_client(alice)
    created = client.post("/api/keys", {"name": "k", "expires_at": expires_at}, content_type="application/json")
    assert created.status_code == status, created.content
    if status == 201:
        assert created.json()["api_key"]["expires_at"] == "3173-01-26T11:20:21Z"
