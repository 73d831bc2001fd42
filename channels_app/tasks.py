from __future__ import annotations

from celery import shared_task

from tokenhub.lib.locks import single_run

from . import checks
from .models import Channel


@shared_task
def retest_disabled_channels() -> dict[str, bool]:
    """Re-test auto-disabled channels; the ones that pass are enabled again."""
    with single_run("retest-disabled-channels") as acquired:
        return checks.retest_auto_disabled() if acquired else {}


@shared_task
def probe_balances() -> int:
    with single_run("probe-balances", timeout=900) as acquired:
        if not acquired:
            return 0
        channels = list(Channel.objects.exclude(status="auto_disabled"))
        for channel in channels:
            checks.probe_balance(channel)
        return len(channels)


@shared_task
def test_channel(channel_id: int) -> bool:
    channel = Channel.objects.filter(pk=channel_id).first()
    return bool(channel and checks.test_channel(channel).ok)
