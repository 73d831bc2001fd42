"""A lock in the cache (Redis when configured) so two beats or workers never run one periodic job twice."""

from __future__ import annotations

import contextlib
import uuid

from django.core.cache import cache


@contextlib.contextmanager
def single_run(name: str, timeout: int = 300):
    """Yields True when this process holds the lock, False when another one does."""
    key, token = f"lock:{name}", uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=timeout)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)
