"""Counters in the cache that expire: rate limits, breaker failures, in-flight calls, log-in failures.

One helper instead of a copy of "add, else incr" in every app. On Redis (tokenhub.cache) a count
is one round trip; on other caches (the embedded default's local memory) it falls back to
add-then-incr, with the counter's expiry between the two handled.
"""

from __future__ import annotations

import contextlib

from django.core.cache import cache


def count(key: str, amount: int = 1, *, timeout: int) -> int:
    """Add `amount` to the counter at `key`, created to expire after `timeout` seconds when absent
    (a running counter keeps its first expiry: fixed windows). Returns the new value."""
    counted = getattr(cache, "count", None)
    if counted is not None:
        return counted(key, amount, timeout)
    if cache.add(key, amount, timeout=timeout):
        return amount
    try:
        return cache.incr(key, amount)
    except ValueError:  # expired between add() and incr()
        cache.add(key, amount, timeout=timeout)
        return amount


def uncount(key: str) -> None:
    """Take one off a counter (a call in flight that ended); a counter that expired stays gone."""
    with contextlib.suppress(ValueError):
        cache.decr(key)
