"""The relay in process: the official SDKs talk to TokenHub's ASGI application through
`httpx.ASGITransport` (no server, no socket on the caller's side), and TokenHub calls the bundled fake
provider over real HTTP. These run on the embedded SQLite default (the per-call ledger path) and on
PostgreSQL (the batched path) alike; the services run drives the same paths through gunicorn.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import anthropic
import httpx
import httpx2
import openai
import pytest
from asgiref.sync import async_to_sync

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord, UsageStatus
from billing.pricing import Prices, Usage, cost_of
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.catalog import import_catalog
from channels_app.models import CatalogModel
from relay import settlement
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS = Decimal("10")


@dataclass
class Caller:
    user: User
    key: str

    def spent(self) -> Decimal:
        return FUNDS - ledger.balance_of(self.user.pk)


@pytest.fixture
def caller(transactional_db, fake_upstream) -> Caller:
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=FUNDS, memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "sdk")
    add_channel(bob, fake_upstream, name="bob-openai")
    add_channel(bob, fake_upstream, provider="anthropic", models=("claude-haiku-4-5",), name="bob-anthropic")
    routing.invalidate()
    return Caller(alice, raw)


def in_process(use, http=httpx):
    """Run `use(http_client)` against the ASGI app in one event loop; let its settlements finish.

    `http`: the HTTP package of the SDK in use (the Anthropic SDK brings its own fork, httpx2).
    """
    from billing.ledger import batched
    from tokenhub.asgi import application

    async def run():
        transport = http.ASGITransport(app=application)
        async with http.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
            try:
                return await use(http_client)
            finally:
                await settlement.finish_background(10)
                await batched.close()

    return async_to_sync(run)()


def openai_client(caller: Caller, http_client) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key=caller.key, http_client=http_client, max_retries=0
    )


def anthropic_client(caller: Caller, http_client) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://testserver", api_key=caller.key, http_client=http_client, max_retries=0
    )


def billed_at_catalog_prices(record: UsageRecord) -> Decimal:
    model = CatalogModel.objects.get(name=record.model)
    prices = Prices(input=model.input_price, output=model.output_price)
    return cost_of(Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens), prices)


def the_one_settled_call() -> UsageRecord:
    (record,) = UsageRecord.objects.all()
    assert record.status == UsageStatus.OK and not record.estimated
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert reconcile().problems == []
    return record


def test_an_openai_sdk_chat_is_answered_and_billed_on_its_usage(caller):
    async def use(http_client):
        return await openai_client(caller, http_client).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    answer = in_process(use)
    assert answer.choices[0].message.content
    record = the_one_settled_call()
    assert (record.input_tokens, record.output_tokens) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert record.cost_usd == billed_at_catalog_prices(record) > 0
    assert caller.spent() == record.cost_usd


def test_an_openai_sdk_stream_arrives_whole_and_is_billed_once(caller):
    async def use(http_client):
        stream = await openai_client(caller, http_client).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk async for chunk in stream]

    chunks = in_process(use)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    record = the_one_settled_call()
    assert record.output_tokens == chunks[-1].usage.completion_tokens
    assert caller.spent() == record.cost_usd == billed_at_catalog_prices(record)


def test_an_anthropic_sdk_message_on_an_anthropic_channel(caller):
    async def use(http_client):
        return await anthropic_client(caller, http_client).messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )

    message = in_process(use, httpx2)
    assert message.content[0].text
    record = the_one_settled_call()
    assert record.channel == caller_channel("bob-anthropic")
    assert record.output_tokens == message.usage.output_tokens
    assert caller.spent() == record.cost_usd


def test_an_anthropic_sdk_stream_translated_to_an_openai_channel(caller):
    async def use(http_client):
        async with anthropic_client(caller, http_client).messages.stream(
            model="gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            return await stream.get_final_message()

    message = in_process(use, httpx2)
    assert message.content[0].text
    record = the_one_settled_call()
    assert record.channel == caller_channel("bob-openai")
    assert record.output_tokens == message.usage.output_tokens
    assert caller.spent() == record.cost_usd


def test_an_unknown_model_is_refused_in_the_callers_format_and_costs_nothing(caller):
    async def use(http_client):
        with pytest.raises(openai.NotFoundError) as refused:
            await openai_client(caller, http_client).chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
        return refused.value

    refusal = in_process(use)
    assert "no-such-model" in refusal.message
    assert refusal.response.headers["x-request-id"]
    assert not UsageRecord.objects.exists() and not Hold.objects.exists()
    assert caller.spent() == 0


def test_a_caller_short_of_balance_is_refused_before_any_upstream_call(caller):
    ledger.grant(user_id=caller.user.pk, amount=-(FUNDS - Decimal("0.00000100")), memo="t", actor="test")

    async def use(http_client):
        with pytest.raises(anthropic.APIStatusError) as refused:
            await anthropic_client(caller, http_client).messages.create(
                model="claude-haiku-4-5", max_tokens=4096, messages=[{"role": "user", "content": "hi"}]
            )
        return refused.value

    refusal = in_process(use, httpx2)
    assert refusal.status_code == 402
    assert "Insufficient balance: need $" in refusal.message
    assert refusal.body["type"] == "error"  # Anthropic's error shape
    assert not UsageRecord.objects.exists()
    assert ledger.balance_of(caller.user.pk) == Decimal("0.00000100")


def caller_channel(name: str) -> str:
    from channels_app.models import Channel

    return Channel.objects.get(name=name).public_id
