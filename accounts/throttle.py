"""Brute-force limits in the cache: failed log-ins per (username, client address), and hourly
rate limits for sign-ups and password resets per client address (and per reset e-mail)."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

from tokenhub.lib.counters import count

RATE_WINDOW_SECONDS = 3600  # the *_RATE_LIMIT settings count per hour


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.lower()}|{address}".encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def is_locked_out(username: str, address: str) -> bool:
    return (cache.get(_key(username, address)) or 0) >= settings.LOGIN_FAILURE_LIMIT


def record_failure(username: str, address: str) -> None:
    count(_key(username, address), timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def clear_failures(username: str, address: str) -> None:
    cache.delete(_key(username, address))


def retry_after(action: str, subject: str, limit: int, window: int = RATE_WINDOW_SECONDS) -> int | None:
    """Count one `action` by `subject` (an address, an e-mail); past `limit` in the current fixed
    window, the seconds until that window ends. A limit of 0 turns the check off."""
    if limit <= 0:
        return None
    now = time.time()
    digest = hashlib.sha256(f"{action}|{subject.lower()}".encode()).hexdigest()[:32]
    key = f"rate:{action}:{digest}:{int(now // window)}"
    if count(key, timeout=window + 60) <= limit:
        return None
    return max(1, int(window - now % window))


def minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))
