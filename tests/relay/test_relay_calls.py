"""Same-format calls through the production stack with the official SDKs, and their exact ledger results."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync

from billing import ledger
from billing.models import Account, Hold, HoldStatus, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from tests.conftest import wait_for

pytestmark = pytest.mark.services

PROMPT = [{"role": "user", "content": "Say hello to the whole world"}]  # 6 words + 4 = 10 input tokens
MINI_IN, MINI_OUT = Decimal("0.15"), Decimal("0.60")
HAIKU_IN, HAIKU_OUT = Decimal("1.00"), Decimal("5.00")


def expected_cost(inp: int, out: int, price_in: Decimal, price_out: Decimal) -> Decimal:
    return ((inp * price_in + out * price_out) / 1_000_000).quantize(Decimal("0.00000001"))


def settled() -> None:
    """A stream settles just after its last byte: wait for the server to finish."""
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=10)


def assert_charged(world, cost: Decimal, *, calls: int = 1) -> None:
    settled()
    owner = (cost * Decimal("0.2")).quantize(Decimal("0.00000001"))
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - cost * calls
    assert ledger.earnings_of(world.bob.pk) == owner * calls
    revenue = Account.objects.get(code="platform:revenue")
    assert ledger.derived_balance(revenue) == (cost - owner) * calls
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert reconcile().problems == []


def test_openai_sdk_non_stream_is_billed_exactly(world):
    reply = world.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
    completion = reply.parse()
    assert completion.choices[0].message.content.startswith("alpha bravo")
    assert completion.usage.prompt_tokens == 10 and completion.usage.completion_tokens == 20
    cost = expected_cost(10, 20, MINI_IN, MINI_OUT)
    assert reply.headers["x-tokenhub-cost"] == str(cost)
    settled()  # the settlement follows the answer
    record = UsageRecord.objects.get(request_id=reply.headers["x-request-id"])
    assert record.status == UsageStatus.OK and record.channel == world.openai_channel.public_id
    assert (record.input_tokens, record.output_tokens, record.cost_usd) == (10, 20, cost)
    assert_charged(world, cost)


def test_openai_sdk_stream_forwards_every_chunk_and_strips_the_usage_chunk_it_added(world):
    stream = world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split() == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
    ]
    assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    assert_charged(world, expected_cost(10, 20, MINI_IN, MINI_OUT))


def test_openai_stream_keeps_the_usage_chunk_when_the_caller_asks(world):
    stream = world.openai().chat.completions.create(
        model="gpt-4o-mini", messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    usage = [c.usage for c in stream if c.usage]
    assert usage and usage[-1].completion_tokens == 20


def test_async_openai_sdk(world):
    async def go():
        client = world.async_openai()
        reply = await client.chat.completions.create(model="deepseek-chat", messages=PROMPT, max_tokens=5)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        return reply, pieces

    reply, pieces = async_to_sync(go)()
    assert reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"
    assert len(pieces) == 20


def test_anthropic_sdk_non_stream_and_stream(world):
    client = world.anthropic()
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT)
    assert message.content[0].text.startswith("alpha") and message.usage.input_tokens == 10
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 20 and final.usage.output_tokens == 20
    assert_charged(world, expected_cost(10, 20, HAIKU_IN, HAIKU_OUT), calls=2)


def test_async_anthropic_sdk_with_x_api_key_and_aliases(world):
    async def go():
        client = world.async_anthropic()
        return await client.messages.create(model="anthropic/claude-haiku-4-5", max_tokens=3, messages=PROMPT)

    message = async_to_sync(go)()
    assert message.usage.output_tokens == 3 and message.stop_reason == "max_tokens"
    settled()
    record = UsageRecord.objects.get()
    assert record.model == "claude-haiku-4-5"


def test_models_lists_what_the_key_may_use_in_both_shapes(world):
    ids = [m.id for m in world.openai().models.list()]
    assert ids == ["claude-haiku-4-5", "deepseek-chat", "gpt-4o-mini"]
    anthropic_ids = [m.id for m in world.anthropic().models.list()]
    assert anthropic_ids == ids


def test_usage_endpoint_reports_balance_spend_and_calls(world):
    world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    settled()
    data = httpx.get(f"{world.relay}/v1/usage", headers={"authorization": f"Bearer {world.key}"}).json()
    cost = expected_cost(10, 20, MINI_IN, MINI_OUT)
    assert data["balance_usd"] == str(Decimal("10") - cost)
    assert data["key_spent_usd"] == str(cost)
    assert data["data"][0]["model"] == "gpt-4o-mini" and data["data"][0]["cost_usd"] == str(cost)
    assert data["data"][0]["status"] == "ok"


def test_count_tokens_is_forwarded_to_an_anthropic_channel(world):
    count = world.anthropic().messages.count_tokens(model="claude-haiku-4-5", messages=PROMPT)
    assert count.input_tokens == 10


def test_embeddings_pass_through_and_bill_input(world):
    from tests.relay.conftest import add_channel

    add_channel(world.bob, world.upstream, models=("text-embedding-3-small",), name="emb")
    result = world.openai().embeddings.create(model="text-embedding-3-small", input=["one two three", "four"])
    assert len(result.data) == 2
    settled()
    assert UsageRecord.objects.get(model="text-embedding-3-small").input_tokens == 4


def test_prompts_and_answers_are_not_stored(world):
    world.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "secret-prompt-xyzzy"}]
    )
    from django.db import connection

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump = repr(cursor.fetchall())
            assert "xyzzy" not in dump and "alpha bravo" not in dump, table


def test_responses_api_passes_through_to_an_openai_channel(world):
    from channels_app.models import Channel

    Channel.objects.filter(pk=world.openai_channel.pk).update(provider="openai")
    from channels_app import routing

    routing.invalidate()
    client = world.openai()
    response = client.responses.create(model="gpt-4o-mini", input="Say hello to the whole world", max_output_tokens=7)
    assert response.output_text.split()[:2] == ["alpha", "bravo"] and response.usage.output_tokens == 7
    stream = client.responses.create(model="gpt-4o-mini", input="Say hello", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    settled()
    records = UsageRecord.objects.all()  # settlements may land in either order (the first creates accounts)
    assert sorted(r.output_tokens for r in records) == [7, 20] and all(not r.estimated for r in records)


def test_anthropic_headers_are_forwarded(world):
    client = world.anthropic()
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=PROMPT, extra_headers={"anthropic-beta": "tools-2099-01-01"}
    )
    stats = httpx.get(world.upstream.removesuffix("/v1") + "/_stats").json()
    assert stats["last_anthropic_beta"] == "tools-2099-01-01"
