"""One owner cannot reach another's requests through the real relay (gunicorn + uvicorn, fake upstream).

A key holding CR/LF (a row from before keys were checked on entry, written here straight to the
table) must fail its own attempt at the transport, and the call fail over to the next channel,
without a smuggled request ever reaching the upstream.
"""

from __future__ import annotations

import httpx
import pytest

from billing.models import UsageRecord
from channels_app import crypto, routing
from channels_app.models import ChannelKey
from tests.relay.conftest import add_channel
from tests.relay.test_relay_calls import PROMPT, settled
from tests.relay.test_relay_failures import only_channel

pytestmark = pytest.mark.services

SMUGGLING_KEY = "good\r\nContent-Length: 0\r\n\r\nPOST /capture HTTP/1.1\r\nContent-Length: 400\r\n\r\n"


def test_a_smuggling_key_fails_its_own_attempt_and_the_call_fails_over(world):
    legacy = only_channel(world, name="legacy", priority=10)
    box = crypto.encrypt(SMUGGLING_KEY)
    ChannelKey.objects.filter(channel=legacy).update(key_id=box.key_id, ciphertext=box.ciphertext)
    healthy = add_channel(world.bob, world.upstream, name="healthy", priority=1)
    routing.invalidate()
    httpx.post(f"{world.upstream.removesuffix('/v1')}/_stats")  # reset the upstream's counters
    for _ in range(2):  # the second call would be the one swallowed on a shared socket
        reply = world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        assert reply.choices[0].message.content
    settled()
    assert set(UsageRecord.objects.values_list("channel", flat=True)) == {healthy.public_id}
    seen = httpx.get(f"{world.upstream.removesuffix('/v1')}/_stats").json()
    assert "/capture" not in seen["by_path"] and seen["requests"] == 2, seen


def test_a_deactivated_owners_channels_stop_serving_and_earning_at_once(world):
    from accounts import users
    from accounts.models import User
    from billing import ledger

    dave = User.objects.create_user("dave")
    fallback = add_channel(dave, world.upstream, name="daves")
    routing.invalidate()
    users.set_active("bob", False)  # commits: the signal bumps the routing version for every process
    earned = ledger.earnings_of(world.bob.pk)
    for _ in range(8):  # with both channels routable, each call would go either way
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    settled()
    assert set(UsageRecord.objects.values_list("channel", flat=True)) == {fallback.public_id}
    assert ledger.earnings_of(world.bob.pk) == earned
