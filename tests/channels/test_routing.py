from __future__ import annotations

import io
import sys
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from channels_app import channels, health, routing
from channels_app.models import Channel, ChannelStatus
from tests.channels.conftest import make_channel

pytestmark = pytest.mark.django_db


def refusal(name, allowed=()):
    with pytest.raises(routing.Refusal) as info:
        routing.plan(name, allowed)
    return info.value


def test_aliases_and_short_names_reach_the_same_route(catalog, bob):
    channel = make_channel(bob, models=["deepseek/deepseek-chat"], provider="deepseek")
    for name in ("deepseek-chat", "deepseek/deepseek-chat"):
        plan = routing.plan(name)
        assert plan.model.name == "deepseek-chat"
        assert [r.public_id for r in plan.routes] == [channel.public_id]
        assert plan.routes[0].upstream_model == "deepseek/deepseek-chat"


def test_model_mapping_renames_the_upstream_model(catalog, bob):
    make_channel(bob, models=["deepseek-chat"], model_mapping={"deepseek-chat": "deepseek/deepseek-chat"})
    assert routing.plan("deepseek-chat").routes[0].upstream_model == "deepseek/deepseek-chat"


def test_higher_priority_first_then_weighted_random(catalog, bob):
    low = make_channel(bob, name="low", priority=0, approved=True)
    heavy = make_channel(bob, name="heavy", priority=5, weight=3, approved=True)
    light = make_channel(bob, name="light", priority=5, weight=1, approved=True)
    firsts = Counter()
    for _ in range(2000):
        order = [r.public_id for r in routing.plan("gpt-4o-mini").routes]
        assert order[-1] == low.public_id  # the lower tier only as the last fallback
        firsts[order[0]] += 1
    share = firsts[heavy.public_id] / 2000
    assert 0.70 < share < 0.80, share  # weight 3 of 4
    assert firsts[light.public_id] + firsts[heavy.public_id] == 2000


def test_each_exclusion_reason_is_explained(catalog, bob):
    paused = make_channel(bob, name="paused")
    channels.pause(paused)
    auto = make_channel(bob, name="auto")
    channels.set_status(auto, ChannelStatus.AUTO_DISABLED, "401 at 14:02 (authentication failed)")
    cooling = make_channel(bob, name="cooling")
    health.record_failure(cooling.pk, health.RATE_LIMIT, "429", retry_after=30)
    routing.invalidate()
    error = refusal("gpt-4o-mini")
    assert error.status == 503
    assert error.message.startswith('no channel can serve "gpt-4o-mini": 3 channels list it — ')
    assert "disabled by owner" in error.message
    assert "auto-disabled after its upstream refused it" in error.message
    assert "cooling down after 429 at" in error.message
    # Callers see numbers and categories; admins see which channel is which, and the reasons as written.
    assert paused.public_id not in error.message and "401 at 14:02" not in error.message
    assert paused.public_id in error.detail and "(paused)" in error.detail
    assert "auto-disabled: 401 at 14:02" in error.detail


def test_callers_never_read_a_status_reason_as_written(catalog, bob, admin_user):
    by_staff = make_channel(bob, name="by-staff")
    channels.set_status(by_staff, ChannelStatus.PAUSED, f"disabled by admin {admin_user.username}")
    low = make_channel(bob, name="low-balance")
    channels.set_status(low, ChannelStatus.PAUSED, "upstream balance $1.23 below $5")
    routing.invalidate()
    error = refusal("gpt-4o-mini")
    for secret in (admin_user.username, "$1.23", "by-staff", "low-balance", by_staff.public_id, low.public_id):
        assert secret not in error.message, secret
    assert error.message.count("#") == 2 and "paused" in error.message
    assert admin_user.username in error.detail and "$1.23" in error.detail


def test_unknown_model_suggests_the_closest_name(catalog):
    error = refusal("gpt4o")
    assert error.status == 404 and error.message == 'unknown model "gpt4o"; did you mean "gpt-4o"?'
    assert refusal("completely-different-thing").message == 'unknown model "completely-different-thing".'


def test_known_model_without_channels_and_the_allow_list(catalog, bob):
    assert refusal("claude-haiku-4-5").message == 'No channel serves "claude-haiku-4-5" right now.'
    make_channel(bob, models=["claude-haiku-4-5"], provider="anthropic")
    assert refusal("claude-haiku-4-5", allowed=("gpt-4o",)).status == 403
    assert routing.plan("claude-haiku-4-5", allowed_models=("anthropic/claude-haiku-4-5",)).routes


def test_whitespace_in_channel_model_lists_cannot_hide_a_model(catalog, bob):
    make_channel(bob, models=[" gpt-4o-mini\u00a0", "gpt-4o-mini", ""])
    assert Channel.objects.get().model_names == ["gpt-4o-mini"]
    assert routing.plan("gpt-4o-mini").routes


def test_breaker_opens_after_repeated_failures_and_a_half_open_probe_closes_it(catalog, bob):
    channel = make_channel(bob)
    for _ in range(health.FAILURE_THRESHOLD - 1):
        assert health.record_failure(channel.pk, health.SERVER, "HTTP 500") is None
    assert routing.plan("gpt-4o-mini").routes  # still closed
    state = health.record_failure(channel.pk, health.SERVER, "HTTP 500")
    assert state is not None
    assert "cooling down after HTTP 500" in refusal("gpt-4o-mini").message
    # Time passes: one caller gets the probe slot, the next does not.
    expired = health.BreakerState(until=0, reason=state.reason, opens=state.opens)
    from django.core.cache import cache

    cache.set(f"breaker:{channel.pk}", expired, timeout=60)
    health._forget_recent()  # this process's short-lived copy of breaker states
    assert routing.plan("gpt-4o-mini").routes
    assert refusal("gpt-4o-mini").status == 503
    health.record_success(channel.pk)
    assert routing.plan("gpt-4o-mini").routes


def test_a_failed_half_open_probe_doubles_the_backoff(catalog, bob):
    channel = make_channel(bob)
    from django.core.cache import cache

    cache.set(f"breaker:{channel.pk}", health.BreakerState(until=0, reason="x", opens=1), timeout=60)
    state = health.record_failure(channel.pk, health.TIMEOUT, "timeout")
    assert state.opens == 2
    import time

    assert state.until - time.time() > health.BASE_BACKOFF_SECONDS * 3


def test_one_429_never_disables_a_channel(catalog, bob):
    channel = make_channel(bob)
    health.record_failure(channel.pk, health.RATE_LIMIT, "429", retry_after=1)
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE
    assert not health.should_auto_disable(health.RATE_LIMIT) and health.should_auto_disable(health.AUTH)


def test_keys_round_robin_and_a_benched_key_is_skipped(bob):
    channel = make_channel(bob, keys=["k1-aaaaaaaaaaaa", "k2-bbbbbbbbbbbb", "k3-cccccccccccc"])
    health._round_robin.pop(channel.pk, None)
    assert [health.pick_key(channel.pk, 3) for _ in range(3)] == [0, 1, 2]
    health.bench_key(channel.pk, 1)
    picks = [health.pick_key(channel.pk, 3) for _ in range(6)]
    assert 1 not in picks and set(picks) == {0, 2}


def test_a_change_is_seen_without_restart(catalog, bob, django_assert_num_queries):
    channel = make_channel(bob)
    routing.plan("gpt-4o-mini")
    with django_assert_num_queries(0):
        routing.plan("gpt-4o-mini")  # served from the snapshot
    channels.pause(channel)
    routing.invalidate()  # what the post-commit signal does
    assert refusal("gpt-4o-mini").status == 503


def run_add_channel(*args, stdin: str) -> str:
    out, old = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("add_channel", *args, stdout=out, stderr=io.StringIO())
    finally:
        sys.stdin = old
    return out.getvalue()


def test_add_channel_command(catalog, bob):
    out = run_add_channel(
        "--owner",
        "bob",
        "--provider",
        "deepseek",
        "--base-url",
        "http://127.0.0.1:8100",
        "--models",
        "deepseek-chat, deepseek-reasoner",
        "--cut",
        "20",
        "--priority",
        "3",
        "--name",
        "spare",
        stdin="sk-one\nsk-two\n\n",
    )
    channel = Channel.objects.get(public_id=out.strip())
    assert out == channel.public_id + "\n"
    assert channel.owner_cut == Decimal("0.2") and channel.priority == 3 and channel.keys.count() == 2
    assert channel.model_names == ["deepseek-chat", "deepseek-reasoner"]


def test_add_channel_refuses_empty_stdin_bad_cut_and_private_urls(catalog, bob):
    base = ["--owner", "bob", "--provider", "openai", "--models", "gpt-4o"]
    with pytest.raises(CommandError, match="No upstream key on stdin"):
        run_add_channel(*base, "--base-url", "http://127.0.0.1:1", stdin="")
    with pytest.raises(CommandError, match="between 0 and 50 percent"):
        run_add_channel(*base, "--base-url", "http://127.0.0.1:1", "--cut", "60", stdin="k")
    with pytest.raises(CommandError, match="private or loopback"):
        run_add_channel(*base, "--base-url", "http://10.1.2.3/v1", stdin="k")
    assert not Channel.objects.exists()


def test_channels_at_their_rpm_or_concurrency_limit_are_skipped_with_the_reason(catalog, bob):
    rpm = make_channel(bob, name="rpm")
    Channel.objects.filter(pk=rpm.pk).update(rpm_limit=2)
    busy = make_channel(bob, name="busy")
    Channel.objects.filter(pk=busy.pk).update(concurrency_limit=1)
    routing.invalidate()
    assert len(routing.plan("gpt-4o-mini").routes) == 2
    health.call_started(rpm.pk)
    health.call_finished(rpm.pk)
    health.call_started(rpm.pk)
    health.call_started(busy.pk)
    error = refusal("gpt-4o-mini")
    assert "at its limit of 2 requests per minute" in error.message
    assert "at its limit of 1 concurrent calls" in error.message
    health.call_finished(busy.pk)
    assert [r.public_id for r in routing.plan("gpt-4o-mini").routes] == [busy.public_id]


def test_a_channel_paused_for_low_upstream_balance_says_so(catalog, bob):
    channel = make_channel(bob)
    channels.set_status(channel, ChannelStatus.PAUSED, "upstream balance $1.00 below $5")
    routing.invalidate()
    error = refusal("gpt-4o-mini")
    assert "#1 paused: its upstream balance is low" in error.message and "$1.00" not in error.message
    assert "paused: upstream balance $1.00 below $5" in error.detail


def test_explain_route_shows_admins_the_full_story(catalog, bob):
    channel = make_channel(bob, name="spare quota")
    out = io.StringIO()
    call_command("explain_route", "openai/gpt-4o-mini", stdout=out)
    assert f"{channel.public_id} spare quota priority=0" in out.getvalue()
    channels.pause(channel)
    routing.invalidate()
    with pytest.raises(CommandError, match=f"503: .*{channel.public_id} \\(spare quota\\) disabled by owner"):
        call_command("explain_route", "gpt-4o-mini", stdout=io.StringIO())


def test_metrics_and_doctor_read_breakers_without_taking_the_half_open_probe(catalog, bob):
    """A scrape every 15 s must not take the one probe slot an expired breaker hands the next real call."""
    from django.core.cache import cache

    from tokenhub import doctor
    from tokenhub.metrics import StateCollector

    channel = make_channel(bob)
    cache.set(f"breaker:{channel.pk}", health.BreakerState(until=0, reason="HTTP 500", opens=0), timeout=60)
    health._forget_recent()
    breakers = next(f for f in StateCollector()._breakers() if f.name == "tokenhub_breaker_open")
    assert breakers.samples == []  # expired: not open any more, and no series for a closed breaker
    doctor.run()
    assert cache.get(f"breaker-probe:{channel.pk}") is None
    assert routing.plan("gpt-4o-mini").routes  # the first real call still gets the probe
