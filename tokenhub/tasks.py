from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import cache

from .doctor import HEARTBEAT_KEY, HEARTBEAT_STALE


@shared_task
def heartbeat() -> float:
    """Sent by beat every minute, run by a worker: `doctor` reads its time to know both are alive."""
    now = time.time()
    cache.set(HEARTBEAT_KEY, now, int(HEARTBEAT_STALE * 10))
    return now
