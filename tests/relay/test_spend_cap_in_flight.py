"""A key's spend cap counts its calls in flight: concurrent streams cannot spend past it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import openai
import pytest

from accounts import keys
from billing.models import Hold
from billing.reconcile import reconcile
from tests.relay.test_relay_calls import PROMPT, settled
from tests.relay.test_relay_failures import only_channel

pytestmark = pytest.mark.services

CAP = Decimal("0.0009")  # one call's hold (1,000 output tokens of gpt-4o-mini: $0.0006, plus its bytes)


def test_concurrent_streams_past_a_spend_cap_are_refused_counting_the_calls_in_flight(world):
    only_channel(world, keys_=("drip-100",))  # each answer streams for about two seconds
    key, raw = keys.create_key(world.alice, "capped", spend_cap_usd=CAP)

    def stream(_index: int):
        try:
            chunks = world.openai(key=raw).chat.completions.create(
                model="gpt-4o-mini", messages=PROMPT, max_tokens=1000, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        except openai.APIStatusError as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(stream, range(8)))

    answers = [r for r in results if isinstance(r, str)]
    refusals = [r for r in results if isinstance(r, openai.APIStatusError)]
    held = Hold.objects.filter(api_key=key)
    assert held.count() == len(answers) == 1, results
    assert held.get().amount <= CAP < 2 * held.get().amount  # the cap covers exactly one call's hold
    assert answers[0].startswith("alpha bravo")
    assert len(refusals) == 7 and {r.status_code for r in refusals} == {402}
    assert "spend cap is reached (counting calls in flight)" in refusals[0].message
    settled()
    key.refresh_from_db()
    assert key.reserved_usd == 0 and 0 < key.spent_usd <= CAP
    assert reconcile().problems == []


def test_the_spend_cap_refusal_is_in_the_callers_format(world):
    key, raw = keys.create_key(world.alice, "capped", spend_cap_usd=CAP)
    with pytest.raises(anthropic.APIStatusError) as info:  # a haiku call may cost up to $0.005
        world.anthropic(key=raw).messages.create(model="claude-haiku-4-5", max_tokens=1000, messages=PROMPT)
    assert info.value.status_code == 402
    assert info.value.body["type"] == "error" and "counting calls in flight" in info.value.body["error"]["message"]
    key.refresh_from_db()
    assert key.reserved_usd == 0 and not Hold.objects.filter(api_key=key).exists()
