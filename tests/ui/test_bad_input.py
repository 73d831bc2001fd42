"""Strangers' odd input gets a 4xx or a form error, never a 500, and changes nothing: dates at the
end of the calendar, control characters in names, naive datetimes."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import keys
from accounts.models import ApiKey
from billing import ledger
from billing.models import TransactionKind
from billing.pricing import Prices, Usage
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

LAST_DAY = {"start": "2000-01-01", "end": "9999-12-31"}
UNPRINTABLE = ["nul\x00name", "bell\x07", "line\nbreak", "bidi\u202eevil", "zero\u200bwidth"]


@pytest.fixture
def alice_with_a_call(alice):
    ledger.grant(user_id=alice.pk, amount=Decimal("1"), memo="t", actor="t", kind=TransactionKind.GRANT)
    key, _ = keys.create_key(alice, "calls")
    ledger.hold(
        user_id=alice.pk,
        amount=Decimal("0.01"),
        request_id="rq-1",
        api_key_id=key.pk,
        model="gpt-4o-mini",
        prices=Prices(input=Decimal("0.15"), output=Decimal("0.6")),
    )
    ledger.settle(request_id="rq-1", usage=Usage(input_tokens=10, output_tokens=20), model="gpt-4o-mini")
    return alice


def session(user) -> Client:
    client = Client()
    sign_in(client, user)
    return client


def manage_key(user) -> Client:
    _key, raw = keys.create_key(user, "ops", scope="manage")
    return Client(headers={"authorization": f"Bearer {raw}"})


def test_the_last_day_of_the_calendar_is_a_valid_end_on_page_csv_and_api(alice_with_a_call):
    client = session(alice_with_a_call)
    page = client.get(reverse("billing:usage"), LAST_DAY)
    assert page.status_code == 200 and "rq-1" in page.content.decode()
    export = client.get(reverse("billing:usage_csv"), LAST_DAY)
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][0] == "time" and [row[1] for row in rows[1:]] == ["rq-1"]  # the whole file, not cut
    api = client.get("/api/usage", LAST_DAY)
    assert api.status_code == 200 and api.json()["count"] == 1


def test_csv_with_invalid_filters_is_refused_before_streaming(alice_with_a_call):
    export = session(alice_with_a_call).get(reverse("billing:usage_csv"), {"start": "2026-13-45"})
    assert export.status_code == 400 and "start" in export.content.decode()


@pytest.mark.parametrize("name", UNPRINTABLE)
def test_api_key_names_with_control_characters_are_422(alice, name):
    client = manage_key(alice)
    made = client.post("/api/keys", {"name": name}, content_type="application/json")
    assert made.status_code == 422 and "printable" in made.json()["error"]["fields"]["name"]
    listed = client.post("/api/keys", {"name": "ok", "allowed_models": [name]}, content_type="application/json")
    assert listed.status_code == 422 and "allowed_models.0" in listed.json()["error"]["fields"]
    assert ApiKey.objects.filter(user=alice).count() == 1  # only the client's own key


def test_an_emoji_name_is_still_a_name(alice):
    made = manage_key(alice).post("/api/keys", {"name": "laptop 👩‍💻"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["api_key"]["name"] == "laptop 👩‍💻"


def test_a_naive_expiry_is_422_asking_for_a_timezone(alice):
    client = manage_key(alice)
    naive = client.post(
        "/api/keys", {"name": "x", "expires_at": "2999-01-01T00:00:00"}, content_type="application/json"
    )
    assert naive.status_code == 422 and "timezone" in naive.json()["error"]["fields"]["expires_at"]
    aware = client.post(
        "/api/keys", {"name": "x", "expires_at": "2999-01-01T00:00:00Z"}, content_type="application/json"
    )
    assert aware.status_code == 201 and aware.json()["api_key"]["expires_at"].startswith("2999-01-01T00:00:00")


def test_billing_text_inputs_refuse_control_characters(alice):
    client = manage_key(alice)
    assert client.post("/api/redeem", {"code": "AB\x00CD"}, content_type="application/json").status_code == 422
    payout = client.post(
        "/api/payouts", {"amount_usd": "1", "destination": "IBAN\x00"}, content_type="application/json"
    )
    assert payout.status_code == 422
    for field in ("model", "key", "status"):
        assert client.get("/api/usage", {field: "a\x00b"}).status_code == 422, field


def test_the_keys_page_refuses_control_characters_in_place(alice):
    response = session(alice).post(reverse("accounts:keys"), {"name": "bell\x07", "allowed_models": "gpt\x1b[31m"})
    page = response.content.decode()
    assert response.status_code == 200 and page.count("Must be printable text: U+") == 2
    assert not ApiKey.objects.filter(user=alice).exists()


def test_amounts_in_the_json_api_and_v1_usage_are_plain_decimals(alice):
    from django.test import Client

    from accounts import keys

    _key, raw = keys.create_key(alice, "k")
    client = Client(headers={"authorization": f"Bearer {raw}"})
    balance = client.get("/api/balance").json()
    assert balance["balance_usd"] == "0.00000000", balance  # a zero balance, never "0E-8"
    me = client.get("/api/me")
    assert me.status_code == 200 and "E-" not in me.content.decode()


def test_unknown_api_paths_and_wrong_methods_answer_in_the_apis_shape(alice):
    from django.test import Client

    from accounts import keys

    _key, raw = keys.create_key(alice, "k", scope="manage")
    client = Client(headers={"authorization": f"Bearer {raw}"})
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/keys")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong["Allow"]
