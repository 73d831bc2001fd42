from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils.translation import gettext_noop

from tokenhub.lib.locks import single_run

from . import checks, price_sync, spend
from .catalog import CatalogFormatError
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
def tell_spend_limit_reached(channel_id: int, reason: str, period: str) -> str:
    from accounts import notifications

    channel = Channel.objects.filter(pk=channel_id).values("owner_id", "public_id", "name").first()
    if channel is None:
        return "gone"
    subject = gettext_noop("Your channel %(name)s reached its spend limit")
    body = gettext_noop(
        "Your channel %(name)s (%(id)s): %(reason)s. TokenHub sends it no calls that could pass the limit you set. "
        "Raise the limit on the channel's page if you want it to serve more."
    )
    params = {"name": channel["name"], "id": channel["public_id"], "reason": reason}
    seconds = spend.MONTH_SECONDS if ":m:" in period else spend.DAY_SECONDS  # once per period
    return notifications.deliver(channel["owner_id"], "spend_limit", period, subject, body, params, seconds)


@shared_task
def test_channel(channel_id: int) -> bool:
    channel = Channel.objects.filter(pk=channel_id).first()
    return bool(channel and checks.test_channel(channel).ok)


@shared_task
def sync_prices() -> str:
    """Compare TOKENHUB_PRICE_SYNC_URL's price map with the catalog, tell staff, apply only if allowed."""
    source = settings.TOKENHUB_PRICE_SYNC_URL
    if not source:
        return "off"
    with single_run("sync-prices", timeout=900) as acquired:
        if not acquired:
            return "running elsewhere"
        try:
            text, filename = price_sync.read_source(source)
            result, rows = price_sync.diff(text, filename)
        except CatalogFormatError as exc:
            logger.warning("price sync from %s failed: %s", source, exc)
            _tell_staff("TokenHub price sync failed", f"{source}: {exc}")
            return "failed"
        if result.empty and not result.vanished:
            return "unchanged"
        applied = settings.TOKENHUB_PRICE_SYNC_APPLY
        if applied:
            price_sync.apply(rows)
        outcome = "Applied." if applied else "Not applied (TOKENHUB_PRICE_SYNC_APPLY is off): run sync_prices --yes."
        _tell_staff(
            f"TokenHub price sync: {result.summary()}",
            f"{source}\n\n{price_sync.format_diff(result, 200)}\n\n{outcome}",
        )
        return "applied" if applied else "reported"


def _tell_staff(subject: str, body: str) -> None:
    staff = list(
        get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    logger.info("%s", subject)
    if staff:
        send_mail(subject[:200], body, None, staff, fail_silently=False)
