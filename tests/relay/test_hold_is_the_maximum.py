"""The hold is the most a call can cost: it bounds input (bytes, plus an allowance per image or file
part) and output (the caller's cap, else the model's maximum, which the upstream is then told), and
a channel reporting more is billed the hold, recorded, and after repeated excess paused."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest
from django.core import mail

from accounts.models import User
from billing import ledger
from billing.models import Hold, UsageRecord
from billing.pricing import Prices, estimate_max_cost
from billing.reconcile import reconcile
from channels_app import channels
from channels_app.models import Channel, ChannelStatus
from relay import usage
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.relay.test_relay_calls import MINI_IN, MINI_OUT, PROMPT, settled
from tests.relay.test_relay_failures import only_channel

MINI = Prices(input=MINI_IN, output=MINI_OUT, cache_read=Decimal("0.075"))
PIXEL_URL = "https://example.com/cat.png"


def raw_body(**fields) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", **fields}).encode()


def post(world, raw: bytes, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"authorization": f"Bearer {world.key}", "content-type": "application/json"}
    return httpx.post(f"{world.relay}{path}", content=raw, headers=headers, timeout=30)


def held_for(response: httpx.Response) -> Decimal:
    return Hold.objects.get(request_id=response.headers["x-request-id"]).amount


def upstream_saw(world) -> dict:
    return httpx.get(world.upstream.removesuffix("/v1") + "/_stats").json()["last_body"]


# --- The input bound -----------------------------------------------------------------------------


def test_a_text_calls_input_bound_is_its_bytes_without_walking_the_body():
    raw = raw_body(messages=[{"role": "user", "content": "describe an image of a file"}])
    assert usage.input_token_bound(raw, json.loads(raw), 128_000) == len(raw)
    # The body is not even read when its bytes name no part type: a body that is not the raw's.
    assert usage.input_token_bound(raw, {"type": "image_url"}, 128_000) == len(raw)


def test_each_image_part_adds_a_fixed_allowance_and_each_file_part_a_context_window():
    image = {"type": "image_url", "image_url": {"url": PIXEL_URL}}
    document = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    body = {"messages": [{"role": "user", "content": [image, image, {"type": "text", "text": "hi"}]}]}
    raw = json.dumps(body).encode()
    assert usage.input_token_bound(raw, body, 128_000) == len(raw) + 2 * usage.IMAGE_PART_TOKENS
    body["messages"][0]["content"].append(document)
    raw = json.dumps(body).encode()
    # Allowances add up to at most the context window: no call's input can exceed it.
    assert usage.input_token_bound(raw, body, 128_000) == len(raw) + 128_000
    assert usage.input_token_bound(raw, body, 1_000_000) == len(raw) + 1_000_000


def test_an_escaped_part_type_is_still_found():
    raw = b'{"messages":[{"role":"user","content":[{"type":"\\u0069nput_file","file_id":"f"}]}]}'
    assert usage.input_token_bound(raw, json.loads(raw), 1000) == len(raw) + 1000


@pytest.mark.services
def test_an_image_part_raises_the_hold_and_a_text_calls_hold_is_its_bytes(world):
    text = raw_body(messages=PROMPT, max_tokens=5)
    image = raw_body(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PIXEL_URL}}]}], max_tokens=5
    )
    text_call, image_call = post(world, text), post(world, image)
    assert text_call.status_code == image_call.status_code == 200
    assert held_for(text_call) == estimate_max_cost(len(text), 5, MINI)
    assert held_for(image_call) == estimate_max_cost(len(image) + usage.IMAGE_PART_TOKENS, 5, MINI)
    settled()
    assert reconcile().problems == []


# --- The output bound, told to the upstream ------------------------------------------------------


@pytest.mark.services
def test_a_call_without_a_cap_holds_the_models_maximum_and_the_upstream_is_told_it(world):
    raw = raw_body(messages=PROMPT)
    reply = post(world, raw)
    assert reply.status_code == 200
    assert held_for(reply) == estimate_max_cost(len(raw), 16384, MINI)  # gpt-4o-mini's max_output_tokens
    sent = upstream_saw(world)
    assert sent["max_completion_tokens"] == 16384 and "max_tokens" not in sent  # OpenAI's own field
    settled()


@pytest.mark.services
def test_other_openai_format_providers_are_told_max_tokens(world):
    only_channel(world, provider="deepseek", models=("deepseek-chat",), name="bob-deepseek")
    reply = post(world, json.dumps({"model": "deepseek-chat", "messages": PROMPT}).encode())
    assert reply.status_code == 200
    sent = upstream_saw(world)
    assert sent["max_tokens"] == 8192 and "max_completion_tokens" not in sent  # deepseek-chat's maximum
    settled()


@pytest.mark.services
def test_native_responses_are_told_max_output_tokens_and_a_callers_own_cap_is_left_alone(world):
    reply = post(world, raw_body(input="Say hello"), path="/v1/responses")
    assert reply.status_code == 200
    assert upstream_saw(world)["max_output_tokens"] == 16384
    reply = post(world, raw_body(messages=PROMPT, max_tokens=7))
    assert reply.status_code == 200
    sent = upstream_saw(world)
    assert sent["max_tokens"] == 7 and "max_completion_tokens" not in sent
    settled()


# --- A channel reporting more than the hold ------------------------------------------------------


@pytest.mark.services
def test_absurd_usage_is_billed_at_the_hold_recorded_and_pauses_the_channel(world):
    absurd = only_channel(world, keys_=("absurd",), name="over-reporter")
    calls = 3  # TOKENHUB_EXCESS_PAUSE_COUNT's default
    holds = []
    for _ in range(calls):
        reply = world.openai().chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=PROMPT, max_tokens=5
        )
        assert reply.parse().usage.completion_tokens == 2 * 10**9
        request_id = reply.headers["x-request-id"]
        settled()
        record = UsageRecord.objects.get(request_id=request_id)
        held = Hold.objects.get(request_id=request_id).amount
        holds.append(held)
        assert reply.headers["x-tokenhub-cost"] == format(held, "f")  # the charge, not the report
        assert record.cost_usd == held and record.excess_usd > 1000  # $1,500 reported, the hold billed
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - sum(holds)
    assert ledger.balance_of(world.alice.pk) >= Decimal("10") - calls * max(holds)
    assert ledger.earnings_of(world.bob.pk) == sum((h * Decimal("0.2")).quantize(Decimal("1E-8")) for h in holds)
    wait_for(lambda: Channel.objects.get(pk=absurd.pk).status == ChannelStatus.PAUSED, timeout=10)
    assert "reported usage above the call's hold 3 times" in Channel.objects.get(pk=absurd.pk).status_reason
    with pytest.raises(openai.APIStatusError):  # nothing else serves the model now
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=5)
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - sum(holds)
    assert reconcile().problems == []


@pytest.mark.django_db(transaction=True)
def test_pausing_for_excess_tells_the_owner_and_staff_once(bob, celery_worker):
    bob.email = bob.verified_email = "bob@example.com"
    bob.save()
    User.objects.create_user("root", email="root@example.com", is_staff=True)
    channel = add_channel(bob, "http://127.0.0.1:9/v1", name="over-reporter")
    assert channels.pause_for_excess(channel.pk, "reported usage above the call's hold 3 times")
    assert not channels.pause_for_excess(channel.pk, "again")  # already paused: no second mail
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.PAUSED and channel.status_reason.startswith("reported usage")
    wait_for(lambda: len(mail.outbox) == 2)  # staff's at once, the owner's through Celery
    assert sorted(m.to for m in mail.outbox) == [["bob@example.com"], ["root@example.com"]]
    owners = next(m for m in mail.outbox if m.to == ["bob@example.com"])
    assert "over-reporter" in owners.subject and "not billed" in owners.body


def test_offering_tools_allows_for_the_providers_own_tool_prompt():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "t"}]}
    raw = json.dumps(body).encode()
    assert usage.input_token_bound(raw, body, None) == len(raw) + usage.TOOLS_OVERHEAD_TOKENS
    plain = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert usage.input_token_bound(json.dumps(plain).encode(), plain, None) == len(json.dumps(plain).encode())


@pytest.mark.services
def test_a_report_a_little_over_the_hold_is_billed_at_the_hold_but_pauses_nothing(world):
    # The bound can be short for what it cannot size (an image, a provider's own prompt): callers must
    # not be able to get an honest channel paused with such calls.
    honest = only_channel(world, keys_=("overby-150",), name="slightly-over")
    for _ in range(4):  # more than TOKENHUB_EXCESS_PAUSE_COUNT
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=5)
    settled()
    records = list(UsageRecord.objects.all())
    holds = {h.request_id: h.amount for h in Hold.objects.all()}
    assert all(0 < r.excess_usd < holds[r.request_id] for r in records), [(r.excess_usd, r.channel) for r in records]
    assert Channel.objects.get(pk=honest.pk).status == ChannelStatus.ACTIVE


@pytest.mark.parametrize(
    "extra",
    [
        {"mcp_servers": [{"type": "url", "url": "https://caller.example/mcp", "name": "big"}]},
        {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
        {"tools": [{"type": "web_search"}]},
        {"web_search_options": {}},
        {"container": "c1"},
    ],
    ids=["mcp", "server-tool", "hosted-search", "search-options", "container"],
)
def test_a_provider_reading_things_itself_holds_the_context_window(extra):
    # The provider bills what it fetched as input: nothing in the request's bytes bounds it.
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    raw = json.dumps(body).encode()
    assert usage.input_token_bound(raw, body, 200_000) == len(raw) + 200_000


def test_client_tools_hold_only_the_tool_prompt_allowance():
    body = {"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}, {"name": "t"}]}
    raw = json.dumps(body).encode()
    assert usage.input_token_bound(raw, body, 200_000) == len(raw) + usage.TOOLS_OVERHEAD_TOKENS
