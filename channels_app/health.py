"""Channel health: a circuit breaker shared by every process through the cache (Redis when configured).

- N failures (5xx, timeouts, connect errors) within a window open the breaker for a backoff that
  doubles each time it reopens; when it runs out, one request is let through as a half-open probe;
  its success closes the breaker.
- A 429 cools the channel down for the upstream's retry-after (bounded) but never disables it.
- Authentication, deactivated-account and insufficient-quota errors auto-disable the channel
  (unless its owner turned auto-disable off). A failed balance query never reaches here.
- Reported usage costing more than the call's hold (the excess is never billed) is counted per
  channel; repeated within a window, it pauses the channel (channels.pause_for_excess).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from tokenhub.lib.counters import count, uncount

from . import spend

FAILURE_THRESHOLD = settings.TOKENHUB_BREAKER_FAILURES
FAILURE_WINDOW_SECONDS = settings.TOKENHUB_BREAKER_WINDOW_SECONDS
BASE_BACKOFF_SECONDS = settings.TOKENHUB_BREAKER_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 600
MAX_RETRY_AFTER_SECONDS = 120
PROBE_SECONDS = 30
KEY_BENCH_SECONDS = 60

# Failure kinds the relay and channel tests report.
AUTH, QUOTA, RATE_LIMIT, SERVER, TIMEOUT, CONNECT = "auth", "quota", "rate_limit", "server", "timeout", "connect"
DISABLING = {AUTH, QUOTA}


@dataclass(frozen=True)
class BreakerState:
    until: float  # unix time the cooldown ends
    reason: str
    opens: int

    def describe(self) -> str:
        return f"cooling down after {self.reason} until {datetime.fromtimestamp(self.until, UTC):%H:%M:%S} UTC"


def _breaker_key(channel_id: int) -> str:
    return f"breaker:{channel_id}"


def _rpm_key(channel_id: int, minute: int | None = None) -> str:
    return f"rpm:{channel_id}:{minute if minute is not None else int(time.time() // 60)}"


def _inflight_key(channel_id: int) -> str:
    return f"inflight:{channel_id}"


# Breaker states read recently, per set of channels: a busy process asks the cache at most every
# TOKENHUB_HEALTH_LOCAL_SECONDS. Failures and successes recorded here clear it at once; other
# processes' events arrive within that time. Channels with RPM/concurrency limits always ask.
_recent: dict[tuple[int, ...], tuple[float, dict]] = {}


def _forget_recent() -> None:
    _recent.clear()


def look(channel_ids, limited_ids, spend_ids=()) -> tuple[dict[int, BreakerState], dict[int, tuple[int, ...]]]:
    """Breaker states of `channel_ids`; (requests this minute, calls in flight) of `limited_ids` and
    (spent today, spent this month, in 10⁻⁸ USD: channels_app/spend.py) of `spend_ids`, all in at
    most one cache round trip."""
    ids = tuple(channel_ids)
    if not limited_ids and not spend_ids:
        found = _recent.get(ids)
        if found is not None and time.monotonic() < found[0]:
            return found[1], {}
    keys = [_breaker_key(cid) for cid in channel_ids]
    for cid in limited_ids:
        keys += [_rpm_key(cid), _inflight_key(cid)]
    for cid in spend_ids:
        keys += spend.keys(cid)
    found = cache.get_many(keys)
    breakers = {cid: found[_breaker_key(cid)] for cid in channel_ids if _breaker_key(cid) in found}
    usage = {cid: (found.get(_rpm_key(cid), 0), found.get(_inflight_key(cid), 0)) for cid in limited_ids}
    for cid in spend_ids:
        usage[cid] = (*usage.get(cid, (0, 0)), *(int(found.get(key, 0)) for key in spend.keys(cid)))
    if not limited_ids and not spend_ids and settings.TOKENHUB_HEALTH_LOCAL_SECONDS > 0:
        if len(_recent) > 1000:
            _recent.clear()
        _recent[ids] = (time.monotonic() + settings.TOKENHUB_HEALTH_LOCAL_SECONDS, breakers)
    return breakers, usage


def call_started(channel_id: int) -> None:
    """Count a call against the channel's RPM and concurrency limits (the relay calls this)."""
    count(_rpm_key(channel_id), timeout=120)
    count(_inflight_key(channel_id), timeout=3600)


def call_finished(channel_id: int) -> None:
    uncount(_inflight_key(channel_id))


def is_open(state: BreakerState | None, now: float | None = None) -> bool:
    """The breaker is open now: a read with no side effect (for metrics and doctor, which must not take
    the half-open probe slot that `is_usable` hands the next real call)."""
    return state is not None and (now or time.time()) < state.until


def is_usable(channel_id: int, state: BreakerState | None, now: float | None = None) -> bool:
    """Closed, or half-open and this caller won the single probe slot."""
    if state is None:
        return True
    if (now or time.time()) < state.until:
        return False
    return cache.add(f"breaker-probe:{channel_id}", 1, timeout=PROBE_SECONDS)


def _open(channel_id: int, reason: str, seconds: float, opens: int) -> BreakerState:
    _forget_recent()
    state = BreakerState(until=time.time() + seconds, reason=reason, opens=opens)
    cache.set(_breaker_key(channel_id), state, timeout=int(seconds) + MAX_BACKOFF_SECONDS)
    cache.delete(f"breaker-probe:{channel_id}")
    return state


def record_success(channel_id: int) -> None:
    _forget_recent()
    # Only pay for the delete when there is something to clear.
    if cache.get(_breaker_key(channel_id)) is not None:
        cache.delete_many([_breaker_key(channel_id), f"breaker-failures:{channel_id}", f"breaker-probe:{channel_id}"])


def record_failure(
    channel_id: int, kind: str, detail: str = "", retry_after: float | None = None
) -> BreakerState | None:
    """Count a failure; returns the breaker state when this failure opened (or kept open) the breaker."""
    stamp = datetime.now(UTC).strftime("%H:%M")
    reason = f"{detail or kind} at {stamp}"
    if kind == RATE_LIMIT:
        seconds = min(max(retry_after or BASE_BACKOFF_SECONDS, 1), MAX_RETRY_AFTER_SECONDS)
        return _open(channel_id, reason, seconds, opens=0)
    previous = cache.get(_breaker_key(channel_id))
    if previous is not None and time.time() >= previous.until:
        # The half-open probe failed: reopen with a doubled backoff.
        opens = previous.opens + 1
        return _open(channel_id, reason, min(BASE_BACKOFF_SECONDS * 2**opens, MAX_BACKOFF_SECONDS), opens)
    key = f"breaker-failures:{channel_id}"
    failures = count(key, timeout=FAILURE_WINDOW_SECONDS)
    if failures >= FAILURE_THRESHOLD:
        cache.delete(key)
        return _open(channel_id, reason, BASE_BACKOFF_SECONDS, opens=0)
    return None


def record_excess(channel_id: int) -> bool:
    """Count one answer whose reported usage cost more than its hold (billing charged the hold).

    True when this channel has done so TOKENHUB_EXCESS_PAUSE_COUNT times within the window: the
    caller pauses it, and the count starts over.
    """
    key = f"excess:{channel_id}"
    if count(key, timeout=settings.TOKENHUB_EXCESS_WINDOW_SECONDS) < settings.TOKENHUB_EXCESS_PAUSE_COUNT:
        return False
    cache.delete(key)
    return True


def should_auto_disable(kind: str) -> bool:
    return kind in DISABLING


# --- Upstream keys of one channel: round-robin, a failing key benched for a while ------


_round_robin: dict[int, int] = {}


def bench_key(channel_id: int, position: int, seconds: int = KEY_BENCH_SECONDS) -> None:
    cache.set(f"key-bench:{channel_id}:{position}", 1, timeout=seconds)


def pick_key(channel_id: int, key_count: int) -> int:
    """The next key position in round-robin order, skipping benched keys (all benched: plain round-robin)."""
    start = _round_robin.get(channel_id, 0)
    _round_robin[channel_id] = start + 1
    order = [(start + offset) % key_count for offset in range(key_count)]
    if key_count == 1:
        return 0
    benched = cache.get_many([f"key-bench:{channel_id}:{position}" for position in order])
    for position in order:
        if f"key-bench:{channel_id}:{position}" not in benched:
            return position
    return order[0]
