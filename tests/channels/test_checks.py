"""Channel tests, auto-disable and re-enable (through Celery), cooldowns and balance probes,
against the fake upstream on 127.0.0.1."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from channels_app import channels, checks, routing
from channels_app.models import Channel, ChannelStatus
from channels_app.tasks import probe_balances, retest_disabled_channels
from tests.channels.conftest import make_channel
from tests.conftest import wait_for


def run_test_channel(*args) -> str:
    out = io.StringIO()
    call_command("test_channel", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_healthy_channel_passes_and_its_latency_is_recorded(catalog, bob, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["good-key"])
    out = run_test_channel(channel.public_id)
    assert out.startswith(f"ok   {channel.public_id}")
    channel.refresh_from_db()
    assert channel.last_test_ok is True and channel.last_test_latency_ms is not None
    assert "HTTP 200" in channel.last_test_message


@pytest.mark.django_db
def test_anthropic_channel_is_tested_with_its_own_wire_format(catalog, bob, fake_upstream):
    origin = fake_upstream.removesuffix("/v1")
    channel = make_channel(bob, provider="anthropic", base_url=origin, models=["claude-haiku-4-5"], keys=["good"])
    assert checks.test_channel(channel).ok


@pytest.mark.django_db
def test_an_authentication_error_auto_disables_with_the_reason(catalog, bob, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["fail-401"])
    with pytest.raises(CommandError, match="1 channel"):
        run_test_channel(channel.public_id)
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.AUTO_DISABLED
    assert "401" in channel.status_reason and "authentication failed" in channel.status_reason
    routing.invalidate()  # what the post-commit signal does (this test's transaction never commits)
    with pytest.raises(routing.Refusal, match="auto-disabled after its upstream refused it") as info:
        routing.plan("gpt-4o-mini")
    assert re.search(r"auto-disabled: 401 at \d\d:\d\d UTC \(authentication failed\)", info.value.detail)


@pytest.mark.django_db
def test_owner_can_turn_auto_disable_off(catalog, bob, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["fail-402"])
    Channel.objects.filter(pk=channel.pk).update(auto_disable=False)
    channel.refresh_from_db()
    checks.test_channel(channel)
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE and channel.last_test_ok is False


@pytest.mark.django_db
def test_a_429_cools_down_without_disabling(catalog, bob, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["fail-429"])
    checks.test_channel(channel)
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE
    with pytest.raises(routing.Refusal, match="cooling down after HTTP 429"):
        routing.plan("gpt-4o-mini")


@pytest.mark.django_db
def test_repeated_5xx_open_the_breaker(catalog, bob, fake_upstream):
    channel = make_channel(bob, base_url=fake_upstream, keys=["fail-503"])
    checks.test_channel(channel)
    assert routing.plan("gpt-4o-mini").routes  # one failure is not enough
    checks.test_channel(channel)
    checks.test_channel(channel)
    with pytest.raises(routing.Refusal, match="cooling down after HTTP 503"):
        routing.plan("gpt-4o-mini")
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE


def test_celery_re_enables_an_auto_disabled_channel_that_passes(celery_worker, bob, fake_upstream):
    from channels_app.catalog import import_catalog
    from tests.channels.conftest import DEFAULT_CATALOG

    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    broken = make_channel(bob, base_url=fake_upstream, keys=["fail-401"], name="broken")
    fixed = make_channel(bob, base_url=fake_upstream, keys=["fail-401"], name="fixed")
    for channel in (broken, fixed):
        checks.test_channel(channel)
    assert set(Channel.objects.values_list("status", flat=True)) == {ChannelStatus.AUTO_DISABLED}
    channels.replace_keys(fixed, ["a-good-key"])  # the owner fixed their key
    retest_disabled_channels.delay()
    wait_for(lambda: Channel.objects.get(pk=fixed.pk).status == ChannelStatus.ACTIVE)
    assert Channel.objects.get(pk=broken.pk).status == ChannelStatus.AUTO_DISABLED
    routing.invalidate()
    assert [r.public_id for r in routing.plan("gpt-4o-mini").routes] == [fixed.public_id]


def test_balance_probe_records_pauses_low_and_never_disables_on_errors(celery_worker, bob, fake_upstream):
    origin = fake_upstream.removesuffix("/v1")
    rich = make_channel(bob, provider="deepseek", base_url=origin, models=["deepseek-chat"], keys=["k"])
    low = make_channel(bob, provider="deepseek", base_url=origin, models=["deepseek-chat"], keys=["k"])
    Channel.objects.filter(pk=low.pk).update(min_balance_usd=Decimal("50"))
    failing = make_channel(bob, provider="deepseek", base_url=origin, models=["deepseek-chat"], keys=["fail-500"])
    plain = make_channel(bob, provider="openai", base_url=fake_upstream, keys=["k"])
    probe_balances.delay()
    wait_for(lambda: Channel.objects.filter(balance_checked_at__isnull=False).count() == 4)
    rich.refresh_from_db(), low.refresh_from_db(), failing.refresh_from_db(), plain.refresh_from_db()
    assert rich.balance_usd == Decimal("42.50") and rich.status == ChannelStatus.ACTIVE
    assert low.status == ChannelStatus.PAUSED and "below $50" in low.status_reason
    assert failing.status == ChannelStatus.ACTIVE and "HTTP 500" in failing.balance_status
    assert plain.balance_status == "unsupported"


@pytest.mark.django_db
def test_connect_time_check_refuses_a_target_no_longer_allowed(catalog, bob, fake_upstream, settings):
    from channels_app.providers import pinning

    channel = make_channel(bob, base_url=fake_upstream, keys=["good"])
    pinning._pins.clear()
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = []  # the operator withdrew the permission after saving
    result = checks.test_channel(channel)
    assert not result.ok and "refused" in result.message and "private or loopback" in result.message
    pinning._pins.clear()


@pytest.mark.django_db
def test_connections_are_pinned_to_the_checked_address_and_keep_the_host_name(catalog, bob, fake_upstream):
    import httpx

    from channels_app.providers import pinning

    port = fake_upstream.rsplit(":", 1)[1].split("/")[0]
    pinning._pins.clear()
    channel = make_channel(bob, base_url=f"http://localhost:{port}/v1", keys=["good"])
    assert checks.test_channel(channel).ok
    assert pinning._pins[("http", "localhost", int(port))][0] in {"127.0.0.1", "::1"}
    # The upstream saw the name the owner configured, while the socket went to the pinned IP.
    seen = httpx.get(f"http://127.0.0.1:{port}/_stats").json()
    assert seen["last_host"] == f"localhost:{port}"
    pinning._pins.clear()


@pytest.mark.django_db
def test_connect_time_check_applies_the_allowed_port(catalog, bob, fake_upstream, settings):
    from channels_app.providers import pinning

    port = int(fake_upstream.rsplit(":", 1)[1].split("/")[0])
    pinning._pins.clear()
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = [f"127.0.0.1:{port}"]
    channel = make_channel(bob, base_url=fake_upstream, keys=["good"])
    assert checks.test_channel(channel).ok
    pinning._pins.clear()
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = [f"127.0.0.1:{port + 1}"]  # another port of the same host
    result = checks.test_channel(channel)
    assert not result.ok and "private or loopback" in result.message
    pinning._pins.clear()
