from __future__ import annotations

import logging
from datetime import date

from celery import shared_task
from django.conf import settings
from django.utils.translation import gettext_noop

from accounts.models import User
from tokenhub.lib.locks import single_run

from . import codes, ledger
from .reconcile import reconcile

logger = logging.getLogger(__name__)


@shared_task
def grant_checkin(user_id: int, day: str) -> str:
    """The check-in reward; idempotent per (user, UTC day) through its unique row."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email_verified:
        return "unverified"  # the views say so; a task queued before the address changed grants nothing
    record = ledger.checkin(user_id=user_id, day=date.fromisoformat(day), amount=settings.TOKENHUB_CHECKIN_REWARD_USD)
    return str(record.amount)


@shared_task
def generate_redemption_codes(batch_id: int) -> int:
    return codes.fill_batch(batch_id)


@shared_task
def release_stale_holds() -> int:
    with single_run("release-stale-holds") as acquired:
        if not acquired:
            return 0
        released = ledger.release_stale_holds(older_than_seconds=settings.TOKENHUB_HOLD_TIMEOUT_SECONDS)
    if released:
        logger.warning("released %d stale hold(s)", released)
    return released


@shared_task
def reconcile_ledger() -> bool:
    with single_run("reconcile-ledger", timeout=3600) as acquired:
        if not acquired:
            return True
        report = reconcile()
    for problem in report.problems:
        logger.error("ledger: %s", problem)
    return report.ok


@shared_task
def tell_low_balances() -> int:
    """E-mail users whose balance is below their low-balance alert (at most once a day each, by the
    notification's repeat key per day); returns how many were queued."""
    from datetime import UTC, datetime

    from django.db.models import F, OuterRef, Subquery

    from accounts import notifications
    from accounts.models import User

    from .models import Account, AccountKind
    from .pricing import usd

    balance = Account.objects.filter(kind=AccountKind.USER, user_id=OuterRef("pk")).values("balance")[:1]
    low = (
        User.objects.filter(is_active=True, low_balance_alert_usd__isnull=False)
        .annotate(balance=Subquery(balance))
        .filter(balance__lt=F("low_balance_alert_usd"))
        .values_list("pk", "balance", "low_balance_alert_usd")
    )
    day = datetime.now(UTC).date().isoformat()
    queued = 0
    subject = gettext_noop("Your balance is %(balance)s, below your alert of %(alert)s")
    body = gettext_noop(
        "Your %(site)s balance is %(balance)s, below the %(alert)s you asked to be warned at. Calls are refused "
        "once it cannot cover them: add credit on your balance page, or change the alert on your settings page."
    )
    for user_id, current, alert in low.iterator():
        params = {"balance": usd(current), "alert": usd(alert), "site": settings.TOKENHUB_SITE_NAME}
        notifications.send(user_id, "low_balance", f"{day}:{alert}", subject, body, params)
        queued += 1
    return queued


@shared_task
def roll_up_usage() -> int:
    """Usage records past TOKENHUB_USAGE_RETENTION_DAYS become daily totals (billing/retention.py)."""
    from . import retention

    with single_run("roll-up-usage", timeout=3600) as acquired:
        if not acquired:
            return 0
        rolled = retention.roll_up()
    for day in rolled:
        logger.info("usage of %s rolled up: %d record(s) into %d row(s)", day.day, day.records, day.rows)
    return sum(day.records for day in rolled)


@shared_task
def check_open_orders() -> dict:
    """Top-ups still pending after a minute: the provider is asked, so a lost notification loses no credit."""
    from .payments import orders

    return orders.check_open_orders()
