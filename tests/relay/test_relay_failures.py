"""Failover, refunds, partial settlement, disconnects and every error case, seen through the official SDKs."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from django.utils import timezone

from accounts import keys
from billing import ledger
from billing.models import Hold, HoldStatus, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from channels_app import channels, health, routing
from channels_app.models import Channel, ChannelStatus
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.relay.test_relay_calls import MINI_IN, MINI_OUT, PROMPT, assert_charged, expected_cost, settled

pytestmark = pytest.mark.services


def only_channel(world, **kwargs):
    """Replace the default OpenAI-format channel with one configured for the test."""
    channels.pause(world.openai_channel)
    routing.invalidate()
    return add_channel(world.bob, world.upstream, **kwargs)


def disconnect_after(world, relay: str, chunks: int) -> None:
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{relay}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {world.key}"}
        ) as response,
    ):
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data:")
            if seen >= chunks:
                break


def test_failover_from_a_failing_channel_to_a_healthy_one(world):
    only_channel(world, keys_=("fail-500",), priority=10, name="broken")
    healthy = add_channel(world.bob, world.upstream, priority=1, name="healthy")
    reply = world.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
    assert reply.parse().choices[0].message.content
    settled()
    record = UsageRecord.objects.get(request_id=reply.headers["x-request-id"])
    assert record.channel == healthy.public_id and record.status == UsageStatus.OK
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - expected_cost(10, 20, MINI_IN, MINI_OUT)


def test_upstream_500_everywhere_refunds_the_hold(world):
    only_channel(world, keys_=("fail-500",))
    with pytest.raises(openai.InternalServerError) as info:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.status_code == 502 and "No upstream could answer" in info.value.message
    assert ledger.balance_of(world.alice.pk) == Decimal("10")
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.FAILED and record.cost_usd == 0
    assert reconcile().problems == []


def test_a_channels_own_401_is_never_the_callers_401(world):
    broken = only_channel(world, keys_=("fail-401",))
    with pytest.raises(openai.InternalServerError) as info:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.status_code == 502
    broken.refresh_from_db()
    assert broken.status == ChannelStatus.AUTO_DISABLED and "authentication failed" in broken.status_reason
    # The next call explains why nothing can serve it.
    with pytest.raises(openai.InternalServerError, match="auto-disabled"):
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)


def test_upstream_dying_mid_stream_settles_what_was_delivered(world):
    only_channel(world, keys_=("cut-5",))
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 5
    settled()
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL and record.estimated
    assert record.output_tokens <= 6  # the role chunk + 5 words, counted locally
    assert 0 < record.cost_usd < expected_cost(10, 20, MINI_IN, MINI_OUT) * 10
    assert reconcile().problems == []


def test_anthropic_stream_cut_mid_way_raises_and_settles_partially(world):
    Channel.objects.filter(pk=world.anthropic_channel.pk).delete()
    add_channel(world.bob, world.upstream, provider="anthropic", models=("claude-haiku-4-5",), keys_=("cut-3",))
    with (
        pytest.raises(anthropic.APIStatusError),
        world.anthropic().messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT) as stream,
    ):
        for _ in stream.text_stream:
            pass
    settled()
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL
    assert record.input_tokens == 10  # from message_start, the upstream's own count


def test_client_disconnect_mid_stream_settles_and_leaves_no_hold(world):
    only_channel(world, keys_=("drip-100",))
    disconnect_after(world, world.relay, 3)  # hang up mid-answer
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=10)
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL and record.error == "client disconnected"
    assert record.output_tokens < 20
    assert reconcile().problems == []


def test_more_concurrent_streams_than_database_connections(world):
    """The server's pool has 4 connections; 12 slow streams all complete and settle."""
    only_channel(world, keys_=("drip-20",))

    def one(_):
        stream = world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)
        return sum(1 for c in stream if c.choices and c.choices[0].delta.content)

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(one, range(12))) == [20] * 12
    settled()
    assert UsageRecord.objects.filter(status=UsageStatus.OK).count() == 12
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - 12 * expected_cost(10, 20, MINI_IN, MINI_OUT)


# --- Errors in the caller's own format -----------------------------------------------------------


def test_an_unknown_key_is_a_401_in_each_format(world):
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        world.openai(key="sk-hub-" + "x" * 48).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    with pytest.raises(anthropic.AuthenticationError, match=r"Missing API key|Invalid API key"):
        world.anthropic(key="nope").messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT)
    assert not Hold.objects.exists()


def test_a_revoked_key_is_a_401_that_says_so(world):
    key, raw = keys.create_key(world.alice, "old")
    keys.revoke_key(key)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        world.openai(key=raw).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert not Hold.objects.exists()


def test_an_expired_key_is_a_401_that_says_so(world):
    key, raw = keys.create_key(world.alice, "brief", expires_at=timezone.now() + timedelta(hours=1))
    # Its hour has passed (set, not waited for); the key was never used, so no cache holds it.
    type(key).objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(anthropic.AuthenticationError, match="expired"):
        world.anthropic(key=raw).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT)
    assert not Hold.objects.exists()


def test_insufficient_balance_is_402_and_holds_nothing(world):
    ledger.grant(user_id=world.alice.pk, amount=Decimal("-9.999"), memo="drain", actor="test")
    with pytest.raises(openai.APIStatusError) as info:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=16000)
    assert info.value.status_code == 402 and "Insufficient balance: need $" in info.value.message
    with pytest.raises(anthropic.APIStatusError) as info:
        world.anthropic().messages.create(model="claude-haiku-4-5", max_tokens=20000, messages=PROMPT)
    assert info.value.status_code == 402
    assert info.value.body["error"]["type"] == "billing_error"
    assert not Hold.objects.exists()


def test_spend_cap_is_402(world):
    _key, raw = keys.create_key(world.alice, "capped", spend_cap_usd=Decimal("0.0001"))
    with pytest.raises(openai.APIStatusError, match="spend cap") as info:
        world.openai(key=raw).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.status_code == 402


def test_model_not_on_the_allow_list_is_403(world):
    _key, raw = keys.create_key(world.alice, "narrow", allowed_models=["claude-haiku-4-5"])
    with pytest.raises(openai.PermissionDeniedError, match="may not use model"):
        world.openai(key=raw).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert world.anthropic(key=raw).messages.create(model="claude-haiku-4-5", max_tokens=2, messages=PROMPT)


def test_unknown_model_is_404_with_a_suggestion(world):
    with pytest.raises(openai.NotFoundError, match='did you mean "gpt-4o-mini"'):
        world.openai().chat.completions.create(model="gpt-4o-mni", messages=PROMPT)
    with pytest.raises(anthropic.NotFoundError, match="unknown model"):
        world.anthropic().messages.create(model="claude-nonsense-9", max_tokens=5, messages=PROMPT)


def test_known_model_without_a_healthy_channel_is_503_with_the_reasons(world):
    channels.pause(world.openai_channel)
    routing.invalidate()
    with pytest.raises(openai.InternalServerError) as info:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.status_code == 503
    assert 'no channel can serve "gpt-4o-mini": 1 channel lists it — #1 disabled by owner' in info.value.message
    assert world.bob.username not in info.value.message and world.openai_channel.public_id not in info.value.message


def test_an_endpoint_no_channel_format_can_serve_is_refused_clearly(world):
    with pytest.raises(openai.InternalServerError, match="anthropic-format channels, which cannot take a embeddings"):
        world.openai().embeddings.create(model="claude-haiku-4-5", input="hello")
    assert not Hold.objects.exists()


def fresh_minute() -> None:
    """Per-minute counters: start well inside a minute so it cannot turn over mid-test."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def test_rate_limit_is_429_with_retry_after(world):
    from tests.servers import asgi_server

    fresh_minute()
    with asgi_server(TOKENHUB_KEY_RPM="2", TOKENHUB_ROUTING_CHECK_SECONDS="0") as limited:
        client = openai.OpenAI(base_url=f"{limited}/v1", api_key=world.key, max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        with pytest.raises(openai.RateLimitError, match="2 requests per minute") as info:
            for _ in range(2):
                client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        assert 1 <= int(info.value.response.headers["retry-after"]) <= 60


def test_token_rate_limit_is_429_once_a_key_has_used_its_minute(world):
    from tests.servers import asgi_server

    fresh_minute()
    with asgi_server(TOKENHUB_KEY_TPM="40", TOKENHUB_ROUTING_CHECK_SECONDS="0") as limited:
        client = openai.OpenAI(base_url=f"{limited}/v1", api_key=world.key, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # 10 + 20 tokens
        settled()
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # 30 < 40: still admitted
        settled()
        with pytest.raises(openai.RateLimitError, match="40 tokens per minute"):
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)


def test_a_stalled_ledger_refuses_new_calls_with_a_503_and_charges_nothing(world):
    """Settlements the database cannot write must not pile up without end: new calls wait, then are refused."""
    import psycopg

    from billing.ledger import batched
    from tests.servers import asgi_server

    stalled = dict(
        TOKENHUB_SETTLEMENT_GATHER_MS="0",
        TOKENHUB_SETTLEMENT_BACKLOG_MAX="2",
        TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS="1",
        TOKENHUB_ROUTING_CHECK_SECONDS="0",
    )
    with asgi_server(**stalled) as relay, psycopg.connect(**batched.connection_params()) as blocker:
        client = openai.OpenAI(base_url=f"{relay}/v1", api_key=world.key, max_retries=0)
        blocker.execute("LOCK TABLE billing_usagerecord IN SHARE MODE")  # usage rows cannot be written
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        waiting_on_the_lock = (
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'billing_usagerecord'::regclass"
        )
        wait_for(lambda: blocker.execute(waiting_on_the_lock).fetchone()[0] == 1)  # its settlement is stuck
        for _ in range(2):  # answered; their settlements wait behind the first
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
        assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "5"
        assert "the ledger is behind" in info.value.message and "nothing was charged" in info.value.message
        assert Hold.objects.count() == 3  # the refused call held nothing
        blocker.rollback()  # the database comes back: the backlog is written
        settled()
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert_charged(world, expected_cost(10, 20, MINI_IN, MINI_OUT), calls=4)
    assert reconcile().problems == []


def test_malformed_bodies_are_400_naming_the_field(world):
    headers = {"authorization": f"Bearer {world.key}", "content-type": "application/json"}
    bad = httpx.post(f"{world.relay}/v1/chat/completions", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="messages"):
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=[])
    no_max = httpx.post(
        f"{world.relay}/v1/messages",
        headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
        json={"model": "claude-haiku-4-5", "messages": PROMPT},
    )
    assert no_max.status_code == 400 and no_max.json()["error"]["message"].startswith("max_tokens")
    assert no_max.json()["type"] == "error"


def test_body_too_large_is_413_in_the_callers_format(world):
    huge = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 21_000_000}]}
    response = httpx.post(
        f"{world.relay}/v1/chat/completions",
        content=json.dumps(huge),
        timeout=30,
        headers={"authorization": f"Bearer {world.key}", "content-type": "application/json"},
    )
    assert response.status_code == 413 and "larger than" in response.json()["error"]["message"]


def test_a_caller_caused_upstream_400_is_checked_against_the_next_channels_then_returned(world):
    add_channel(world.bob, world.upstream, name="second")
    add_channel(world.bob, world.upstream, name="third")
    stats_url = world.upstream.removesuffix("/v1") + "/_stats"
    httpx.post(stats_url)
    with pytest.raises(openai.BadRequestError, match="greater than 2"):
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, temperature=5)
    # Every channel within TOKENHUB_MAX_ATTEMPTS (3) was asked; all refused, so the caller gets the refusal.
    assert httpx.get(stats_url).json()["requests"] == 3
    assert not Channel.objects.filter(status=ChannelStatus.AUTO_DISABLED).exists()
    assert routing.plan("gpt-4o-mini").routes  # no breaker opened
    assert ledger.balance_of(world.alice.pk) == Decimal("10")
    assert UsageRecord.objects.get().status == UsageStatus.FAILED


def test_channels_refusing_every_request_are_served_around_without_blaming_any(world):
    liar = only_channel(world, keys_=("fail-400",), name="refuses-everything", priority=10)
    add_channel(world.bob, world.upstream, keys_=("fail-400",), name="refuses-too", priority=5)
    honest = add_channel(world.bob, world.upstream, name="honest", priority=1)
    for _ in range(health.FAILURE_THRESHOLD + 1):
        assert world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT).choices
    settled()
    assert set(UsageRecord.objects.values_list("channel", flat=True)) == {honest.public_id}
    # Which of two disagreeing channels is right cannot be told: neither breaker opens (else a lax
    # channel could shut an honest one out with requests the honest one rightly refuses).
    routable = [r.channel_id for r in routing.plan("gpt-4o-mini").routes]
    assert liar.pk in routable and honest.pk in routable


def test_every_response_carries_a_request_id(world):
    ok = world.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
    assert ok.headers["x-request-id"].startswith("req_")
    bad = httpx.post(f"{world.relay}/v1/chat/completions", json={}, headers={"authorization": "Bearer x"})
    assert bad.headers["x-request-id"].startswith("req_")


def test_wrong_method_is_405_in_the_callers_format(world):
    response = httpx.get(f"{world.relay}/v1/chat/completions")
    assert response.status_code == 405 and response.json()["error"]["message"].endswith("takes POST only.")


def test_drain_policy_bills_the_upstreams_full_usage_after_a_disconnect(world):
    from tests.servers import asgi_server

    only_channel(world, keys_=("drip-50",))
    with asgi_server(TOKENHUB_DISCONNECT_POLICY="drain", TOKENHUB_ROUTING_CHECK_SECONDS="0") as draining:
        disconnect_after(world, draining, 3)
        wait_for(lambda: UsageRecord.objects.exists(), timeout=15)
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL and not record.estimated
    assert record.output_tokens == 20  # the upstream's own count, read to the end
    assert record.cost_usd == expected_cost(10, 20, MINI_IN, MINI_OUT)


def test_slow_first_byte_times_out_and_refunds(world):
    from tests.servers import asgi_server

    only_channel(world, keys_=("slow-3000",))
    with asgi_server(TOKENHUB_UPSTREAM_READ_TIMEOUT="0.5", TOKENHUB_ROUTING_CHECK_SECONDS="0") as impatient:
        client = openai.OpenAI(base_url=f"{impatient}/v1", api_key=world.key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.status_code == 504 and "timed out" in info.value.message
    assert ledger.balance_of(world.alice.pk) == Decimal("10")


def test_limits_count_only_the_channel_that_served_the_call(world):
    from django.core.cache import cache

    serving = only_channel(world, name="serving", priority=10)
    fallback = add_channel(world.bob, world.upstream, name="fallback", priority=0)
    Channel.objects.filter(pk__in=[serving.pk, fallback.pk]).update(rpm_limit=100, concurrency_limit=5)
    routing.invalidate()
    world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    settled()
    minute = int(time.time() // 60)
    assert cache.get(f"rpm:{serving.pk}:{minute}") == 1 and cache.get(f"inflight:{serving.pk}") == 0
    # The fallback was a candidate but never called: its counters are untouched.
    assert cache.get(f"rpm:{fallback.pk}:{minute}") is None and cache.get(f"inflight:{fallback.pk}") is None
