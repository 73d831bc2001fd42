"""Two hundred streams at once from one key whose spend cap and balance cover only some of them: the cap and the
balance hold, every admitted call settles, every refusal is a clean 402 in the caller's format, and the books
balance to the last unit."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord
from billing.pricing import Prices, estimate_max_cost
from billing.reconcile import reconcile
from channels_app import routing
from tests.relay.test_relay_calls import settled
from tests.relay.test_relay_failures import only_channel

pytestmark = pytest.mark.services

STREAMS = 200
BODY_BYTES = 2000  # every body is padded to this length, so every call's hold is the same
MAX_TOKENS = 1000
ADMITTED = 40  # the cap covers this many holds (and half of one more); the balance covers ten more


def body(api_format: str) -> bytes:
    """A streamed call of exactly BODY_BYTES bytes in either format (the padding is in the prompt)."""
    message = {"role": "user", "content": ""}
    shape = {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS, "stream": True, "messages": [message]}
    if api_format == "openai":
        shape["stream_options"] = {"include_usage": True}
    message["content"] = "hi " + "." * (BODY_BYTES - 3 - len(json.dumps(shape)))
    raw = json.dumps(shape).encode()
    assert len(raw) == BODY_BYTES
    return raw


def hold_per_call() -> Decimal:
    prices = Prices(**routing.plan("gpt-4o-mini", ()).model.prices)
    return estimate_max_cost(BODY_BYTES, MAX_TOKENS, prices)


async def one_stream(client: httpx.AsyncClient, relay: str, raw_key: str, index: int) -> tuple[str, int, object]:
    api_format = "openai" if index % 2 else "anthropic"
    path = "/v1/chat/completions" if api_format == "openai" else "/v1/messages"
    headers = {"authorization": f"Bearer {raw_key}", "content-type": "application/json"}
    async with client.stream("POST", relay + path, content=body(api_format), headers=headers) as response:
        data = await response.aread()
    if response.status_code == 200:
        return api_format, 200, data.decode()
    return api_format, response.status_code, (response.headers.get("content-type"), json.loads(data))


async def storm(relay: str, raw_key: str) -> list[tuple[str, int, object]]:
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=STREAMS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(one_stream(client, relay, raw_key, i) for i in range(STREAMS)))


def assert_a_clean_402(api_format: str, content_type: str, error: dict) -> None:
    assert content_type.startswith("application/json")
    if api_format == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "billing_error", error
    else:
        assert error["error"]["type"] == "insufficient_quota", error
        assert error["error"]["code"] == "insufficient_quota", error


def test_two_hundred_streams_on_one_key_never_overrun_its_cap_or_balance_and_settle_exactly(world):
    only_channel(world, keys_=("drip-150",))  # each answer streams for about three seconds: they all overlap
    hold = hold_per_call()
    assert hold == Decimal("0.0009")  # 2,000 bytes at $0.15/M + 1,000 output tokens at $0.60/M
    erin = User.objects.create_user("erin")
    initial = hold * (ADMITTED + 10)
    ledger.grant(user_id=erin.pk, amount=initial, memo="load", actor="test", kind=TransactionKind.GRANT)
    key, raw = keys.create_key(erin, "load", spend_cap_usd=hold * ADMITTED + hold / 2)
    revenue_before = ledger.derived_balance(ledger.platform_account("revenue"))

    results = asyncio.run(storm(world.relay, raw))

    answered = [r for r in results if r[1] == 200]
    refused = [r for r in results if r[1] != 200]
    assert len(answered) == ADMITTED, [r[:2] for r in refused if r[1] != 402]
    assert all(text.count("data:") > 3 or "event:" in text for _f, _s, text in answered)
    assert {status for _f, status, _e in refused} == {402}
    for api_format, _status, (content_type, error) in refused:
        assert_a_clean_402(api_format, content_type, error)
    settled()
    key.refresh_from_db()
    records = UsageRecord.objects.filter(api_key=key)
    spent = records.aggregate(total=Sum("cost_usd"))["total"]
    assert key.reserved_usd == 0 and not Hold.objects.filter(api_key=key, status=HoldStatus.OPEN).exists()
    assert records.count() == ADMITTED and records.filter(status="ok").count() == ADMITTED
    assert 0 < key.spent_usd == spent <= key.spend_cap_usd
    balance = ledger.balance_of(erin.pk)
    assert balance >= 0 and balance + spent == initial
    owner_share = records.aggregate(total=Sum("owner_cut_usd"))["total"]
    platform_share = ledger.derived_balance(ledger.platform_account("revenue")) - revenue_before
    assert ledger.earnings_of(world.bob.pk) == owner_share and owner_share + platform_share == spent
    assert reconcile().problems == []
