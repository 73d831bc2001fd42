from __future__ import annotations

import logging

from celery import shared_task

from tokenhub.lib.locks import single_run

from . import checks
from .models import Channel

logger = logging.getLogger(__name__)


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
            try:
                checks.probe_balance(channel)
            except Exception:  # one owner's endpoint must not stop the probe of every channel after it
                logger.exception("balance probe of channel %s failed", channel.public_id)
        return len(channels)


@shared_task
def test_channel(channel_id: int) -> bool:
    channel = Channel.objects.filter(pk=channel_id).first()
    return bool(channel and checks.test_channel(channel).ok)
