"""Per-key limits: requests per minute on admission, tokens per minute counted at settlement.

Counters live in Redis when configured (process memory otherwise), through tokenhub.lib.counters.
A channel's own limits (RPM, concurrency) are channels_app.health's; the relay gives back its
in-flight count when the serving channel's call ends (`channel_call_finished`).
"""

from __future__ import annotations

import time
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from billing.pricing import Usage
from channels_app import health, spend
from tokenhub.lib.counters import count

from .call import RelayError


def _minute_key(prefix: str, key_id: int) -> tuple[str, int]:
    now = time.time()
    return f"{prefix}:{key_id}:{int(now // 60)}", 60 - int(now) % 60


def check_rate_limit(key_id: int) -> None:
    """Requests are counted on admission; tokens when a call settles (its real usage), so a key
    over its token budget is refused from its next call until the minute turns."""
    rpm, tpm = settings.TOKENHUB_KEY_RPM, settings.TOKENHUB_KEY_TPM
    if rpm:
        key, retry = _minute_key("rl", key_id)
        if count(key, timeout=70) > rpm:
            raise RelayError(
                429,
                f"Rate limit reached for this key: {rpm} requests per minute. Retry in {retry} s.",
                "rate_limit_exceeded",
                {"retry-after": str(retry)},
            )
    if tpm:
        key, retry = _minute_key("tpm", key_id)
        if (cache.get(key) or 0) >= tpm:
            raise RelayError(
                429,
                f"Token rate limit reached for this key: {tpm} tokens per minute. Retry in {retry} s.",
                "rate_limit_exceeded",
                {"retry-after": str(retry)},
            )


def count_tokens_used(key_id: int, usage: Usage) -> None:
    if not settings.TOKENHUB_KEY_TPM:
        return
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    count(_minute_key("tpm", key_id)[0], tokens, timeout=70)


def channel_call_finished(attempt, spent: Decimal = Decimal(0)) -> None:
    """The serving channel's call is over (failover counted it against the channel's limits): its
    in-flight count given back, its spend reservation replaced by what it cost (0: released)."""
    if attempt.route.limited:
        health.call_finished(attempt.route.channel_id)
    if attempt.reservation is not None:
        spend.settle(attempt.reservation, spent)
