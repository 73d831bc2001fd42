from __future__ import annotations

import logging
from datetime import date

from celery import shared_task
from django.conf import settings

from tokenhub.lib.locks import single_run

from . import codes, ledger
from .reconcile import reconcile

logger = logging.getLogger(__name__)


@shared_task
def grant_checkin(user_id: int, day: str) -> str:
    """The check-in reward; idempotent per (user, UTC day) through its unique row."""
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
