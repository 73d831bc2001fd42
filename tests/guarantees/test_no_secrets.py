"""No upstream key and no sk-hub key appears anywhere once it is stored: not in the relay's answers (successes,
a channel's 401 or HTML page, a bad key), not in the admin, the owner's pages or the JSON API, not in the server's
log, not in any text column of the database (the key's ciphertext and hash are bytes and a digest)."""

from __future__ import annotations

import time

import httpx
import pytest
from django.test import Client

from accounts import keys
from billing.models import Hold, UsageRecord
from channels_app.models import Channel
from tests.conftest import make_user, sign_in
from tests.guarantees import leaks
from tests.relay.test_relay_calls import PROMPT, settled
from tests.relay.test_relay_failures import only_channel

pytestmark = pytest.mark.services

UPSTREAM_KEY = "sk-upstream-distinctive-7f3a9c1e5b"
# The fake provider reads a knob from the key's start: these fail, and their messages quote nothing of the key.
FAILING_KEYS = ("fail-401-distinctive-2d8e4a6c1f", "html-400-distinctive-9b1f3e7a5d")
WRONG_CALLER_KEY = "sk-hub-" + "wrongbutplausible" * 3


def relay_calls(world, raw_key: str) -> list[httpx.Response]:
    answers = []
    auth = {"authorization": f"Bearer {raw_key}"}
    with httpx.Client(base_url=world.relay, timeout=30) as client:
        for stream in (False, True):
            body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": stream}
            answers.append(client.post("/v1/chat/completions", json=body, headers=auth))
        answers.append(client.post("/v1/chat/completions", json=body, headers={"authorization": WRONG_CALLER_KEY}))
        answers.append(client.get("/v1/models", headers={"x-api-key": raw_key}))
        answers.append(client.get("/v1/usage", headers=auth))
    return answers


def staff_and_owner_pages(world, channels: list[Channel]) -> dict[str, str]:
    staff, owner = Client(), Client()
    sign_in(staff, make_user("root", is_staff=True, is_superuser=True))
    owner.force_login(world.bob)
    urls = ["/admin/channels_app/channel/", "/admin/accounts/apikey/", "/admin/billing/usagerecord/"]
    urls += ["/admin/billing/hold/", "/admin/accounts/user/"]
    urls += [f"/admin/channels_app/channel/{c.pk}/change/" for c in channels]
    urls += [f"/admin/accounts/apikey/{pk}/change/" for pk in world.alice.api_keys.values_list("pk", flat=True)]
    urls += [f"/admin/billing/usagerecord/{pk}/change/" for pk in UsageRecord.objects.values_list("pk", flat=True)]
    urls += [f"/admin/billing/hold/{pk}/change/" for pk in Hold.objects.values_list("pk", flat=True)]
    pages = {url: staff.get(url) for url in urls}
    pages |= {f"owner {url}": owner.get(url) for url in ["/channels/", "/api/channels", "/earnings/"]}
    pages |= {f"owner /channels/{c.public_id}/": owner.get(f"/channels/{c.public_id}/") for c in channels}
    alice = Client()
    alice.force_login(world.alice)
    pages |= {f"caller {url}": alice.get(url) for url in ["/api/keys", "/api/usage", "/accounts/keys/", "/usage/"]}
    assert all(page.status_code == 200 for page in pages.values()), {u: p.status_code for u, p in pages.items()}
    return {url: page.content.decode() for url, page in pages.items()}


def test_no_upstream_key_or_caller_key_appears_in_answers_pages_logs_or_the_database(world):
    started = time.time()
    serving = only_channel(world, keys_=(UPSTREAM_KEY,), name="distinctive")
    failing = [only_channel(world, keys_=(k,), name=k[:8], priority=10 - i) for i, k in enumerate(FAILING_KEYS)]
    _key, raw = keys.create_key(world.alice, "distinctive caller")
    secrets = {UPSTREAM_KEY, *FAILING_KEYS, raw, world.key}
    answers = relay_calls(world, raw)
    assert [a.status_code for a in answers] == [200, 200, 401, 200, 200]
    settled()
    assert UsageRecord.objects.filter(channel=serving.public_id).count() == 2  # both failing channels were tried
    texts = {f"relay answer {i}": a.text + str(a.headers) for i, a in enumerate(answers)}
    texts |= staff_and_owner_pages(world, [serving, *failing])
    found = [hit for where, text in texts.items() for hit in leaks.in_text(text, where, secrets)]
    found += leaks.in_server_logs(secrets, since=started) + leaks.in_database(secrets)
    assert not found, found
    assert len(texts) >= 20
