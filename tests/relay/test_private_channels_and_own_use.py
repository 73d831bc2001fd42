"""Through the real server and the official SDK: a private channel serves only the users it is shared with
(by the JSON API and by an invitation link in the UI); an owner's own call on their channel costs the
catalog price less the channel's cut, with no owner share."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from django.test import Client

from accounts import keys
from billing import ledger
from billing.models import TransactionKind, UsageRecord
from billing.pricing import Prices, Usage, cost_of, own_use_cost
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.models import Channel, ChannelShare
from tests.conftest import make_user, wait_for
from tests.relay.conftest import add_channel

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
PROMPT = [{"role": "user", "content": "hello"}]


def api(world, raw_key: str, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method, f"{world.relay}/api{path}", headers={"Authorization": f"Bearer {raw_key}"}, timeout=10, **kwargs
    )


@pytest.fixture
def carol_channel(world):
    """carol lends a gpt-4o key privately; nobody else serves gpt-4o."""
    carol = make_user("carol")
    channel = add_channel(carol, world.upstream, models=("gpt-4o",), name="carol's private gpt-4o")
    _key, manage = keys.create_key(carol, "ops", scope="manage")
    made_private = api(world, manage, "PATCH", f"/channels/{channel.public_id}", json={"visibility": "private"})
    assert made_private.status_code == 200 and made_private.json()["visibility"] == "private"
    routing.invalidate()
    return carol, channel, manage


def call(world, raw: str, model: str):
    return world.openai(raw).chat.completions.create(model=model, messages=PROMPT, max_tokens=32)


def listed(world, raw: str) -> set[str]:
    return {m.id for m in world.openai(raw).models.list()}


def test_a_private_channel_serves_only_the_users_it_is_shared_with(world, carol_channel):
    _carol, channel, manage = carol_channel
    with pytest.raises(openai.APIStatusError) as refusal:
        call(world, world.key, "gpt-4o")
    assert refusal.value.status_code == 503 and 'No channel serves "gpt-4o"' in refusal.value.message
    assert "gpt-4o" not in listed(world, world.key)

    shared = api(world, manage, "POST", f"/channels/{channel.public_id}/shares", json={"username": "alice"})
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["alice"]
    wait_for(lambda: "gpt-4o" in listed(world, world.key), timeout=5)
    answer = call(world, world.key, "gpt-4o")
    assert answer.choices[0].message.content
    wait_for(lambda: UsageRecord.objects.filter(user=world.alice, channel=channel.public_id).exists())

    removed = api(world, manage, "DELETE", f"/channels/{channel.public_id}/shares/alice")
    assert removed.status_code == 200 and removed.json()["shared_with"] == []
    wait_for(lambda: "gpt-4o" not in listed(world, world.key), timeout=5)
    with pytest.raises(openai.APIStatusError):
        call(world, world.key, "gpt-4o")


def test_sharing_input_is_refused_in_the_apis_shape_and_only_the_owner_may_share(world, carol_channel):
    _carol, channel, manage = carol_channel
    unknown = api(world, manage, "POST", f"/channels/{channel.public_id}/shares", json={"username": "nobody"})
    assert unknown.status_code == 422 and "No active user" in unknown.text
    _key, alice_manage = keys.create_key(world.alice, "ops", scope="manage")
    stranger = api(world, alice_manage, "POST", f"/channels/{channel.public_id}/shares", json={"username": "alice"})
    assert stranger.status_code == 404 and not ChannelShare.objects.exists()
    public = add_channel(world.bob, world.upstream, models=("gpt-4o-mini",), name="bob public")
    _key, bob_manage = keys.create_key(world.bob, "ops", scope="manage")
    assert api(world, bob_manage, "POST", f"/channels/{public.public_id}/invitation").status_code == 409


def test_an_invitation_link_in_the_ui_shares_the_channel_with_whoever_accepts(world, carol_channel):
    carol, channel, _manage = carol_channel
    owner = Client()
    owner.force_login(carol)
    page = owner.post(f"/channels/{channel.public_id}/sharing/", {"action": "invite"}, headers={"HX-Request": "true"})
    assert page.status_code == 200 and 'data-testid="invitation-link"' in page.content.decode()
    link = Channel.objects.get(pk=channel.pk).invitation_token
    sharing_url, nobody = f"/channels/{channel.public_id}/sharing/", {"action": "share", "username": "nobody"}
    for headers in ({}, {"HX-Request": "true"}):  # the whole page or its fragment, with the form's error
        refused = owner.post(sharing_url, nobody, headers=headers)
        assert refused.status_code == 400 and "No active user" in refused.content.decode()

    invited = Client()
    invited.force_login(world.alice)
    shown = invited.get(f"/invitations/{link}/")
    assert shown.status_code == 200 and "carol" in shown.content.decode()
    assert invited.post(f"/invitations/{link}/").status_code == 302
    assert list(ChannelShare.objects.values_list("user__username", "via")) == [("alice", "link")]
    wait_for(lambda: "gpt-4o" in listed(world, world.key), timeout=5)
    assert call(world, world.key, "gpt-4o").choices[0].message.content
    assert invited.get("/invitations/not-the-token/").status_code == 404


def test_an_owners_own_call_costs_the_price_less_the_cut_and_pays_no_share(world):
    bob = world.bob
    ledger.grant(user_id=bob.pk, amount=Decimal("1"), memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, bob_raw = keys.create_key(bob, "own use")
    earned_before = ledger.earnings_of(bob.pk)
    own = world.openai(bob_raw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=PROMPT, max_tokens=32
    )
    call(world, world.key, "gpt-4o-mini")
    wait_for(lambda: UsageRecord.objects.filter(user__in=[bob, world.alice]).count() == 2)
    own_record = UsageRecord.objects.get(user=bob)
    other_record = UsageRecord.objects.get(user=world.alice)
    prices = routing.snapshot().models["gpt-4o-mini"].prices
    usage = Usage(input_tokens=own_record.input_tokens, output_tokens=own_record.output_tokens)
    full = cost_of(usage, Prices(input=prices["input"], output=prices["output"]))
    cut = world.openai_channel.owner_cut
    assert own_record.cost_usd == own_use_cost(full, cut) < full
    assert own_record.upstream_usd == full  # the owner's upstream served it in full (their spend limits)
    assert other_record.upstream_usd == other_record.cost_usd + other_record.excess_usd
    assert own_record.owner_cut_usd == 0 and own_record.owner_id is None
    assert Decimal(own.headers["x-tokenhub-cost"]) == own_record.cost_usd  # the answer says what was charged
    assert other_record.owner_cut_usd > 0  # a stranger's call pays bob his cut as before
    assert ledger.earnings_of(bob.pk) == earned_before + other_record.owner_cut_usd
    assert ledger.balance_of(bob.pk) == Decimal("1") - own_record.cost_usd
    report = reconcile()
    assert report.ok, report.problems
