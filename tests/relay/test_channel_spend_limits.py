"""A channel's daily spend limit under concurrent calls through the real server and the official SDK:
never passed (calls in flight count at their holds), refusals that say why, the counters exactly what
the calls cost once they settle, and the owner's page showing what is left."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
from django.core.cache import cache
from django.test import Client

from billing.models import Hold, HoldStatus, UsageRecord
from billing.pricing import Prices, Usage, cost_of
from channels_app import routing, spend
from channels_app.models import Channel
from tests.conftest import wait_for
from tests.relay.conftest import add_channel

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
PROMPT = [{"role": "user", "content": "hello"}]


def call(world, index: int) -> str:
    try:
        client = world.openai()
        answer = client.chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=200, stream=index % 2 == 1)
        if index % 2 == 1:
            list(answer)
        return "ok"
    except openai.APIStatusError as exc:
        return exc.message


def catalog_cost(record: UsageRecord) -> Decimal:
    prices = routing.snapshot().models["gpt-4o"].prices
    usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
    return cost_of(usage, Prices(input=prices["input"], output=prices["output"]))


def test_a_daily_limit_is_never_passed_under_concurrent_calls_and_says_why(world):
    channel = add_channel(world.bob, world.upstream, models=("gpt-4o",), name="bob limited")
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])
    assert call(world, 0) == "ok"
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists())
    held = Hold.objects.get().amount
    first = UsageRecord.objects.get()
    # Room for about three more holds at once: most of the next thirty calls must be refused.
    limit = (catalog_cost(first) + 3 * held + held / 2).quantize(Decimal("0.01"))
    Channel.objects.filter(pk=channel.pk).update(daily_spend_limit_usd=limit)
    routing.invalidate()

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(lambda i: call(world, i), range(30)))
    refused = [o for o in outcomes if o != "ok"]
    assert outcomes.count("ok") >= 3 and refused, outcomes
    assert all("owner's daily spend limit" in o and "$" not in o for o in refused), refused
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=20)

    records = UsageRecord.objects.filter(channel=channel.public_id)
    spent = sum((catalog_cost(r) for r in records), Decimal(0))
    assert spent <= limit
    # Every reservation was replaced by what its call cost: the counters are the calls' exact sum.
    assert spend.current(channel.pk) == (spent, spent)

    owner = Client()
    owner.force_login(world.bob)
    page = owner.get(f"/channels/{channel.public_id}/").content.decode()
    assert f"${limit:.2f}" in page and 'data-testid="spend-left"' in page


def test_limits_are_set_through_the_api_and_refused_when_nonsense(world):
    from accounts import keys

    _key, manage = keys.create_key(world.bob, "ops", scope="manage")
    import httpx

    url = f"{world.relay}/api/channels/{world.openai_channel.public_id}"
    headers = {"Authorization": f"Bearer {manage}"}
    ok = httpx.patch(url, json={"daily_spend_limit_usd": "2.5", "monthly_spend_limit_usd": "40"}, headers=headers)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["daily_spend_limit_usd"] == "2.50000000" and body["spent_today_usd"] == "0.00000000"
    too_big = {"daily_spend_limit_usd": str(2**63)}  # past what the 10⁻⁸ USD counters can hold
    for bad in (
        {"daily_spend_limit_usd": "0"},
        {"daily_spend_limit_usd": "-1"},
        {"monthly_spend_limit_usd": "x"},
        too_big,
    ):
        refused = httpx.patch(url, json=bad, headers=headers)
        assert refused.status_code == 422, (bad, refused.text)
    cleared = httpx.patch(url, json={"daily_spend_limit_usd": None}, headers=headers)
    assert cleared.json()["daily_spend_limit_usd"] is None


def test_channels_too_short_for_a_call_cost_none_of_its_attempts(world):
    """A stranger's channels with a tiny limit must not use up the attempts an honest channel would answer."""
    from tests.conftest import make_user

    mallory = make_user("mallory")
    for n in range(3):
        add_channel(
            mallory,
            world.upstream,
            models=("gpt-4o",),
            name=f"tiny {n}",
            weight=100,
            daily_spend_limit_usd=Decimal("0.01"),
        )
    honest = add_channel(world.bob, world.upstream, models=("gpt-4o",), name="honest")
    routing.invalidate()
    client = world.openai()
    for _ in range(5):  # a hold of 4,000 output tokens of gpt-4o is more than $0.01
        assert client.chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=4000).choices
    wait_for(lambda: UsageRecord.objects.filter(channel=honest.public_id).count() == 5)


def test_usage_reported_above_the_hold_counts_in_full_against_the_owners_limit(world):
    channel = add_channel(
        world.bob,
        world.upstream,
        models=("gpt-4o",),
        keys_=("overby-1500",),
        name="over",
        daily_spend_limit_usd=Decimal("5"),
    )
    cache.delete_many([*spend.keys(channel.pk), spend.epoch_key(channel.pk)])
    routing.invalidate()
    world.openai().chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=16)
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists())
    record = UsageRecord.objects.get(channel=channel.public_id)
    assert record.excess_usd > 0  # the caller paid at most the hold
    assert spend.current(channel.pk)[0] == catalog_cost(record) == record.cost_usd + record.excess_usd


def test_the_owner_hears_by_mail_once_when_calls_find_the_channel_at_its_limit(world, inbox):
    from tests.mail import body_of

    channel = add_channel(world.bob, world.upstream, models=("gpt-4o",), name="bob tiny")
    Channel.objects.filter(pk=channel.pk).update(daily_spend_limit_usd=Decimal("0.00000001"))
    routing.invalidate()
    outcomes = [call(world, i) for i in range(3)]
    assert all("owner's daily spend limit" in o for o in outcomes), outcomes
    [message] = inbox.wait_for(1, world.bob.email)
    assert message["Subject"] == "Your channel bob tiny reached its spend limit"
    assert "daily spend limit" in body_of(message) and "$" not in message["Subject"]
    assert len(inbox.to(world.bob.email)) == 1
