"""Key scopes on /api: a relay key calls /v1 and reads usage; everything else needs a session or a
manage key. The walk over every operation makes a new endpoint management-only until allow-listed."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts import keys
from accounts.models import ApiKey
from tokenhub.api import api

pytestmark = pytest.mark.django_db

# The whole allow-list for relay keys. Adding to it is a decision about what a leaked /v1 key reveals.
RELAY_READABLE = {("GET", "/api/me"), ("GET", "/api/usage"), ("GET", "/api/balance"), ("GET", "/api/statement")}


def bearer(raw: str) -> Client:
    return Client(headers={"authorization": f"Bearer {raw}"})


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
NOT_OPERATIONS = {"openapi-json", "openapi-view", "api-root"}  # the public schema and docs


def every_path() -> list[str]:
    """Every /api URL pattern, from the resolver (so operations hidden from the schema count too);
    path parameters get a value that names nothing: the scope check must answer first."""
    patterns, _app, _namespace = api.urls
    return sorted(
        {"/api/" + re.sub(r"<[^>]+>", "nothing", str(p.pattern)) for p in patterns if p.name not in NOT_OPERATIONS}
    )


def schema_operations() -> set[tuple[str, str]]:
    paths = api.get_openapi_schema(path_prefix="/api/")["paths"]
    return {(method.upper(), re.sub(r"\{[^}]+\}", "nothing", path)) for path, ops in paths.items() for method in ops}


def test_a_relay_key_gets_key_scope_on_every_operation_but_the_allow_listed_reads(alice):
    _key, raw = keys.create_key(alice, "narrow", allowed_models=["gpt-4o-mini"], spend_cap_usd="0.01")
    client = bearer(raw)
    answered = set()
    for path in every_path():
        for method in METHODS:
            response = client.generic(method, path, "{}", content_type="application/json")
            if response.status_code == 405:
                continue  # no such operation
            answered.add((method, path))
            if (method, path) in RELAY_READABLE:
                assert response.status_code == 200, (method, path, response.content)
            else:
                assert response.status_code == 403, (method, path, response.status_code)
                error = response.json()["error"]
                assert error["code"] == "key_scope" and "manage key" in error["message"], (method, path)
    # The walk reached every documented operation (and there are plenty of them).
    assert answered >= schema_operations() and len(answered) >= 19
    assert ("POST", "/api/keys") in answered and ("POST", "/api/payouts") in answered


def test_a_relay_key_cannot_mint_a_key_or_ask_for_a_payout(alice):
    _key, raw = keys.create_key(alice, "narrow", allowed_models=["gpt-4o-mini"], spend_cap_usd="0.01")
    client = bearer(raw)
    for scope in ("relay", "manage"):
        made = client.post("/api/keys", {"name": "escape", "scope": scope}, content_type="application/json")
        assert made.status_code == 403
    payout = client.post("/api/payouts", {"amount_usd": "1", "destination": "x"}, content_type="application/json")
    assert payout.status_code == 403
    assert ApiKey.objects.filter(user=alice).count() == 1


def test_a_manage_key_and_a_session_may_create_either_scope(alice):
    _key, raw = keys.create_key(alice, "admin", scope="manage")
    made = bearer(raw).post("/api/keys", {"name": "m2", "scope": "manage"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["api_key"]["scope"] == "manage"
    session = Client()
    session.force_login(alice)
    default = session.post("/api/keys", {"name": "plain"}, content_type="application/json")
    assert default.status_code == 201 and default.json()["api_key"]["scope"] == "relay"
    assert keys.lookup(default.json()["key"]).scope == "relay"
    unknown = session.post("/api/keys", {"name": "x", "scope": "root"}, content_type="application/json")
    assert unknown.status_code == 422 and "scope" in unknown.json()["error"]["fields"]


def test_existing_and_new_keys_default_to_relay(alice):
    key, _raw = keys.create_key(alice, "old")
    assert key.scope == "relay"
    field = ApiKey._meta.get_field("scope")
    assert field.default == "relay"  # the migration's default for existing rows


def test_keys_page_offers_and_shows_the_scope(alice):
    client = Client()
    client.force_login(alice)
    page = client.get("/accounts/keys/").content.decode()
    assert 'name="scope" value="relay"' in page and "checked" in page
    client.post("/accounts/keys/", {"name": "ops", "scope": "manage"})
    client.post("/accounts/keys/", {"name": "app"})
    scopes = dict(ApiKey.objects.filter(user=alice).values_list("name", "scope"))
    assert scopes == {"ops": "manage", "app": "relay"}
    listed = client.get("/accounts/keys/").content.decode()
    assert "scope-manage" in listed and "scope-relay" in listed


def test_the_api_description_documents_the_scopes():
    description = api.get_openapi_schema()["info"]["description"]
    assert "relay" in description and "manage" in description and "key_scope" in description
