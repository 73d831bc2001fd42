"""Channel tests and balance probes: one minimal real call or balance query per channel, results recorded.

Used by `test_channel`, `probe_balances`, the admin actions, the owner's page and the Celery beat
tasks (re-testing auto-disabled channels, probing balances).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from django.utils import timezone

from . import channels, health, routing
from .models import LOW_BALANCE_REASON, Channel, ChannelStatus
from .providers import probes


def _auto_disable_reason(result: probes.ProbeResult) -> str:
    what = "authentication failed" if result.kind == health.AUTH else "insufficient quota"
    return f"{result.status or result.kind} at {datetime.now(UTC):%H:%M} UTC ({what})"


def probe_model(channel: Channel) -> str:
    """The upstream name of the first model the channel serves that the catalog knows."""
    for listed in channel.model_names:
        info = routing.resolve(listed)
        if info is not None and info.mode == "chat":
            return (channel.model_mapping or {}).get(listed) or listed
    return channel.model_names[0] if channel.model_names else ""


def record_outcome(channel: Channel, result: probes.ProbeResult) -> None:
    """Store the result; apply the health rules (auth/quota auto-disable, re-enable on success)."""
    channel.last_test_at = timezone.now()
    channel.last_test_ok = result.ok
    channel.last_test_latency_ms = result.latency_ms
    channel.last_test_message = result.message[:300]
    channel.save(
        update_fields=["last_test_at", "last_test_ok", "last_test_latency_ms", "last_test_message", "updated_at"]
    )
    if channel.status == ChannelStatus.SUSPENDED:
        return  # staff's word stands: a test (the owner's own upstream answers it) changes nothing
    if result.ok:
        health.record_success(channel.pk)
        channels.end_probation_if_proven(channel)
        if channel.status == ChannelStatus.AUTO_DISABLED:
            channels.set_status(channel, ChannelStatus.ACTIVE, "", action="channel.re_enabled")
        return
    if health.should_auto_disable(result.kind) and channel.auto_disable:
        channels.set_status(
            channel, ChannelStatus.AUTO_DISABLED, _auto_disable_reason(result), action="channel.auto_disabled"
        )
    elif channel.status != ChannelStatus.AUTO_DISABLED:
        health.record_failure(channel.pk, result.kind or health.SERVER, result.message, result.retry_after)


def test_channel(channel: Channel) -> probes.ProbeResult:
    keys = channels.upstream_keys(channel)
    if not keys:
        result = probes.ProbeResult(False, 0, "the channel has no upstream key", health.AUTH)
    else:
        key = keys[health.pick_key(channel.pk, len(keys))]
        result = asyncio.run(
            probes.test_call(channel.provider, channel.base_url, key, probe_model(channel), channel.pk)
        )
    record_outcome(channel, result)
    return result


def retest_auto_disabled() -> dict[str, bool]:
    return {c.public_id: test_channel(c).ok for c in Channel.objects.filter(status=ChannelStatus.AUTO_DISABLED)}


def probe_balance(channel: Channel) -> probes.BalanceResult:
    """Query the upstream balance; a low balance pauses the channel, a failed query never disables it."""
    keys = channels.upstream_keys(channel)
    if not keys:
        return probes.BalanceResult(False, message="no upstream key")
    result = asyncio.run(probes.fetch_balance(channel.provider, channel.base_url, keys[0], channel.pk))
    channel.balance_checked_at = timezone.now()
    if not result.supported:
        channel.balance_status = "unsupported"
    elif result.balance_usd is None:
        channel.balance_status = result.message[:200]
    else:
        channel.balance_usd, channel.balance_status = result.balance_usd, "ok"
    channel.save(update_fields=["balance_usd", "balance_status", "balance_checked_at", "updated_at"])
    low = channel.min_balance_usd is not None and result.balance_usd is not None
    if low and result.balance_usd < channel.min_balance_usd and channel.status == ChannelStatus.ACTIVE:
        channels.set_status(
            channel,
            ChannelStatus.PAUSED,
            f"{LOW_BALANCE_REASON} ${result.balance_usd} below ${channel.min_balance_usd}",
            action="channel.paused_low_balance",
        )
    return result
