"""The provider registry: each provider's facts in its own spec, and a new provider is one spec more."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from channels_app import health, providers, routing
from channels_app.channels import ChannelDraft, create_channel
from channels_app.forms import ChannelForm
from channels_app.models import Channel
from channels_app.providers import probes
from channels_app.providers.spec import ANTHROPIC, OPENAI, ProviderSpec
from tests.channels.conftest import make_channel

OPERATIONS = {OPENAI: {"chat", "models", "embeddings", "responses"}, ANTHROPIC: {"messages", "count_tokens", "models"}}


@pytest.mark.parametrize("name", providers.names())
def test_every_provider_names_a_path_for_each_operation_of_its_wire_format(name):
    spec = providers.get(name)
    assert set(spec.paths) == OPERATIONS[spec.wire_format]
    assert not spec.default_base_url or spec.default_base_url.startswith("https://")


@pytest.mark.parametrize(
    ("name", "base_url", "operation", "url"),
    [
        ("openai", "https://api.openai.com/v1/", "chat", "https://api.openai.com/v1/chat/completions"),
        ("anthropic", "https://api.anthropic.com", "messages", "https://api.anthropic.com/v1/messages"),
        # An Anthropic base URL given with the /v1 its paths already carry gets no second one.
        ("anthropic", "https://proxy.example/v1", "count_tokens", "https://proxy.example/v1/messages/count_tokens"),
        ("deepseek", "https://api.deepseek.com/v1", "responses", "https://api.deepseek.com/v1/responses"),
    ],
)
def test_endpoints_join_the_base_url_and_the_operations_path(name, base_url, operation, url):
    assert providers.get(name).endpoint(base_url, operation) == url


def test_auth_headers_are_the_providers_own():
    assert providers.get("openai").auth_headers("k") == {"authorization": "Bearer k"}
    assert providers.get("anthropic").auth_headers("k") == {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def test_only_openai_serves_the_responses_api_natively_and_takes_max_completion_tokens():
    native = {name for name in providers.names() if providers.get(name).native_responses}
    assert native == {"openai"}
    assert providers.get("openai").chat_output_field == "max_completion_tokens"
    assert providers.get("deepseek").chat_output_field == "max_tokens"


def test_balance_answers_are_read_per_provider_in_usd_without_floats():
    deepseek = providers.get("deepseek").balance
    answer = {
        "balance_infos": [
            {"currency": "CNY", "total_balance": "70.00"},
            {"currency": "USD", "total_balance": 10.1},
        ]
    }
    assert deepseek.read(json.dumps(answer).encode()) == Decimal("10.1")
    assert deepseek.url("https://api.deepseek.com/v1") == "https://api.deepseek.com/user/balance"
    credits = providers.get("openai-compatible").balance
    assert credits.read(b'{"data": {"total_credits": 25, "total_usage": 7.25}}') == Decimal("17.75")
    assert credits.absent_on_404
    assert providers.get("openai").balance is None


@pytest.mark.parametrize(
    "answer",
    [
        b'{"data": {"total_credits": NaN, "total_usage": 0}}',
        b'{"data": {"total_credits": Infinity, "total_usage": 0}}',
        b'{"data": {"total_credits": "-Infinity", "total_usage": 0}}',
        b'{"data": {"total_credits": "1e999999999", "total_usage": 1}}',
        b'{"data": {"total_credits": 1e30, "total_usage": 0}}',
        b'{"data": ' * 100_000 + b"1" + b"}" * 100_000,
        b'{"data": {"total_credits": 5, "total_usage": 0, "pad": "' + b"x" * 70_000 + b'"}}',
    ],
    ids=["nan", "infinity", "text-infinity", "huge-exponent", "beyond-the-column", "deep", "oversized"],
)
def test_a_hostile_balance_answer_is_refused_as_not_an_amount(answer):
    with pytest.raises(ValueError):
        providers.get("openai-compatible").balance.read(answer)


def test_a_balance_probe_that_fails_for_one_channel_goes_on_to_the_next(monkeypatch, alice, catalog):
    from channels_app import checks, tasks

    first, second = make_channel(alice, approved=True), make_channel(alice, approved=True)
    probed = []

    def probe(channel):
        probed.append(channel.pk)
        if channel.pk == first.pk:
            raise RuntimeError("an owner's endpoint answered something nobody foresaw")

    monkeypatch.setattr(checks, "probe_balance", probe)
    assert tasks.probe_balances.apply().get() == 2
    assert sorted(probed) == sorted([first.pk, second.pk])


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, "", health.AUTH),
        (400, '{"error": {"code": "invalid_api_key"}}', health.AUTH),
        (400, "Your credit balance is too low", health.QUOTA),
        (429, "", health.RATE_LIMIT),
        (503, "", health.SERVER),
        (400, "bad request", None),
        (404, "", None),
    ],
)
def test_an_upstream_error_is_classed_by_the_providers_markers(status, body, kind):
    assert probes.classify(providers.get("openai"), status, body) == kind


def test_a_providers_own_error_markers_count_for_its_channels_alone():
    acme = replace(providers.get("openai"), name="acme", quota_markers=("out of acme tokens",))
    assert probes.classify(acme, 400, "Out of ACME tokens") == health.QUOTA
    assert probes.classify(providers.get("openai"), 400, "Out of ACME tokens") is None


@pytest.fixture
def acme(monkeypatch):
    """A provider added as a new module would add it: one spec in the registry."""
    spec = ProviderSpec(
        name="acme",
        label="Acme AI",
        wire_format=ANTHROPIC,
        default_base_url="https://api.acme.example",
        paths={"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"},
        auth_headers=lambda key: {"x-acme-key": key},
    )
    monkeypatch.setattr(providers, "_SPECS", (*providers._SPECS, spec))
    monkeypatch.setattr(providers, "PROVIDERS", {**providers.PROVIDERS, "acme": spec})
    return spec


def test_a_new_provider_is_offered_created_and_routed_from_its_spec_alone(acme, alice, catalog):
    assert ("acme", "Acme AI") in ChannelForm().fields["provider"].choices
    channel = make_channel(alice, provider="acme", base_url="", models=("gpt-4o-mini",), approved=True)
    assert channel.base_url == "https://api.acme.example"  # the spec's default
    Channel(provider="acme").full_clean(exclude=["owner", "name", "base_url", "model_names"])
    assert channel.api_format == ANTHROPIC
    (route,) = routing.plan("gpt-4o-mini").routes
    assert (route.provider, route.api_format) == ("acme", ANTHROPIC)


def test_an_unregistered_provider_is_refused_by_name(alice, db):
    draft = ChannelDraft(
        owner_id=alice.pk, provider="nope", base_url="https://x.example", model_names=["m"], upstream_keys=["k" * 20]
    )
    with pytest.raises(ValidationError) as refused:
        create_channel(draft)
    assert "Unknown provider 'nope'; one of openai, anthropic, gemini, deepseek, openai-compatible." in str(
        refused.value
    )
