"""The marketplace's routing policy (channels_app/routing.py): owners cannot outrank the platform.

Priority is staff's alone and bounded; an owner's weight is bounded; a new channel is on probation
(tried after established channels of its priority, weight counted as 1) until staff approve it or
it has a record of completed calls, and a channel on probation still serves when it is alone.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from accounts import keys
from billing.models import UsageRecord, UsageStatus
from channels_app import channels, checks, routing
from channels_app.models import Channel
from tests.channels.conftest import make_channel

pytestmark = pytest.mark.django_db


def key_client(user) -> Client:
    _key, raw = keys.create_key(user, "api", scope="manage")
    return Client(headers={"authorization": f"Bearer {raw}"})


def first_choices(rounds: int = 400) -> Counter:
    return Counter(routing.plan("gpt-4o-mini").routes[0].public_id for _ in range(rounds))


def test_owners_cannot_set_a_priority_through_the_api(catalog, bob):
    client = key_client(bob)
    body = {
        "name": "capture",
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_keys": ["k-1234"],
        "model_names": ["gpt-4o-mini"],
        "priority": 2147483647,
    }
    refused = client.post("/api/channels", body, content_type="application/json")
    assert refused.status_code == 422 and "priority" in refused.json()["error"]["fields"]
    body["priority"] = 5
    refused = client.post("/api/channels", body, content_type="application/json")
    assert refused.status_code == 422 and "staff" in refused.json()["error"]["fields"]["priority"]
    channel = make_channel(bob)
    edit = client.patch(f"/api/channels/{channel.public_id}", {"priority": 5}, content_type="application/json")
    assert edit.status_code == 422 and "staff" in edit.json()["error"]["fields"]["priority"]
    assert Channel.objects.get(pk=channel.pk).priority == 0 and Channel.objects.count() == 1


def test_staff_set_priorities_within_bounds_only(catalog, admin_user):
    channel = make_channel(admin_user)
    client = key_client(admin_user)
    url = f"/api/channels/{channel.public_id}"
    assert client.patch(url, {"priority": 100}, content_type="application/json").json()["priority"] == 100
    too_high = client.patch(url, {"priority": 2**40}, content_type="application/json")
    assert too_high.status_code == 422 and "priority" in too_high.json()["error"]["fields"]
    assert Channel.objects.get(pk=channel.pk).priority == 100


@pytest.mark.parametrize(("field", "value"), [("weight", 101), ("weight", 0), ("priority", 101), ("priority", -101)])
def test_the_database_refuses_out_of_range_priority_and_weight(bob, field, value):
    channel = make_channel(bob)
    with pytest.raises(IntegrityError), transaction.atomic():
        Channel.objects.filter(pk=channel.pk).update(**{field: value})


def test_a_new_channel_is_tried_after_established_ones_whatever_its_weight(catalog, bob, carol):
    established = make_channel(bob, name="established", weight=1, approved=True)
    newcomer = make_channel(carol, name="newcomer", weight=100)
    for _ in range(300):
        order = [r.public_id for r in routing.plan("gpt-4o-mini").routes]
        assert order == [established.public_id, newcomer.public_id]  # a fallback, never first


def test_weight_counts_as_one_while_on_probation(catalog, bob, carol):
    heavy = make_channel(carol, name="heavy", weight=100)
    make_channel(bob, name="light", weight=1)
    share = first_choices(2000)[heavy.public_id] / 2000
    assert 0.42 < share < 0.58, share  # 1 : 1, not 100 : 1


def test_a_channel_on_probation_serves_when_no_other_can(catalog, bob, carol):
    newcomer = make_channel(carol, name="newcomer", weight=100)
    assert [r.public_id for r in routing.plan("gpt-4o-mini").routes] == [newcomer.public_id]
    established = make_channel(bob, name="established", approved=True)
    channels.pause(established)
    routing.invalidate()
    assert routing.plan("gpt-4o-mini").routes[0].public_id == newcomer.public_id


def test_staff_approval_ends_probation(catalog, bob, carol):
    established = make_channel(bob, name="established", weight=1, approved=True)
    newcomer = make_channel(carol, name="newcomer", weight=3)
    channels.approve(newcomer)
    routing.invalidate()
    share = first_choices(2000)[newcomer.public_id] / 2000
    assert 0.68 < share < 0.82, share  # weight 3 of 4 now counts
    assert established.public_id in {r.public_id for r in routing.plan("gpt-4o-mini").routes}


def served(channel, count: int, caller=None) -> None:
    for _ in range(count):
        UsageRecord.objects.create(
            request_id=uuid.uuid4().hex,
            user=caller or channel.owner,
            model="gpt-4o-mini",
            channel=channel.public_id,
            owner=channel.owner,
            status=UsageStatus.OK,
        )


def test_a_passing_test_after_enough_completed_calls_ends_probation(catalog, bob, carol, fake_upstream, settings):
    settings.TOKENHUB_PROBATION_CALLS = 3
    channel = make_channel(bob, base_url=fake_upstream, keys=["good-key"])
    served(channel, 2, caller=carol)
    assert checks.test_channel(channel).ok
    assert Channel.objects.get(pk=channel.pk).on_probation  # two calls are not a record yet
    served(channel, 1, caller=carol)
    assert checks.test_channel(channel).ok
    assert not Channel.objects.get(pk=channel.pk).on_probation


def test_by_default_only_staff_end_a_probation(catalog, bob, carol, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["good-key"])
    served(channel, 50, caller=carol)
    assert checks.test_channel(channel).ok
    assert Channel.objects.get(pk=channel.pk).on_probation


def test_a_record_from_before_a_restarted_probation_does_not_count(catalog, bob, carol, fake_upstream, settings):
    settings.TOKENHUB_PROBATION_CALLS = 3
    channel = make_channel(bob, base_url=fake_upstream, keys=["good-key"])
    served(channel, 3, caller=carol)
    assert checks.test_channel(channel).ok and not Channel.objects.get(pk=channel.pk).on_probation
    channel.refresh_from_db()
    channels.edit_channel(channel, {"model_names": ["gpt-4o-mini", "gpt-4o"]})
    assert checks.test_channel(channel).ok
    assert Channel.objects.get(pk=channel.pk).on_probation  # the old record earned gpt-4o-mini alone


def test_an_owners_calls_to_their_own_channel_earn_no_record(catalog, bob, fake_upstream, settings):
    settings.TOKENHUB_PROBATION_CALLS = 3
    channel = make_channel(bob, base_url=fake_upstream, keys=["good-key"])
    served(channel, 10)  # bob calling his own channel
    assert checks.test_channel(channel).ok
    assert Channel.objects.get(pk=channel.pk).on_probation


def test_a_proven_channel_goes_back_on_probation_when_it_takes_on_new_models_or_keys(catalog, bob):
    for changes in (
        {"model_names": ["gpt-4o-mini", "gpt-4o"]},
        {"upstream_keys": ["another-key"]},
        {"model_mapping": {"gpt-4o-mini": "something-else"}},
    ):
        channel = make_channel(bob, approved=True)
        channels.edit_channel(channel, dict(changes))
        assert Channel.objects.get(pk=channel.pk).on_probation, changes
    kept = make_channel(bob, approved=True)
    channels.edit_channel(kept, {"name": "renamed"})
    assert not Channel.objects.get(pk=kept.pk).on_probation  # a new name proves nothing either way


def test_one_owner_with_many_channels_draws_no_more_than_with_one(catalog, bob, carol):
    mine = [make_channel(bob, approved=True, weight=100, name=f"bob-{n}") for n in range(5)]
    theirs = make_channel(carol, approved=True, weight=100, name="carols")
    firsts = first_choices(2000)
    bobs = sum(firsts[c.public_id] for c in mine)
    assert 0.4 < bobs / 2000 < 0.6, firsts  # half, as one channel each would draw, not five sixths
    assert firsts[theirs.public_id] + bobs == 2000
