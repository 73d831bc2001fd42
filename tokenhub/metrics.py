"""Prometheus metrics (prometheus-client), exposed on /metrics behind TOKENHUB_METRICS_TOKEN.

Several gunicorn workers: prometheus-client's multiprocess mode. gunicorn.conf.py points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start; each worker writes its
counters and histograms to its own memory-mapped files there, a worker's files are marked dead when
it exits, and /metrics (whichever worker serves it) merges them all. So the figures are per node
(one gunicorn master); Prometheus scrapes every node and sums. Without the variable (one process:
the demo, tests) the default registry is used.

Per-call figures are recorded where a call ends (relay/observe.py); what is state rather than an
event — breaker states, holds in flight, ledger totals — is read when /metrics is scraped, from
Redis and cheap queries (the ledger totals cached for TOKENHUB_METRICS_LEDGER_SECONDS).
"""

from __future__ import annotations

import bisect
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

# Seconds: a relayed call spans from a fraction of a millisecond (an error) to minutes (a long stream).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
TTFB_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

RELAY_REQUESTS = Counter(
    "tokenhub_relay_requests",
    "Relayed calls by model, caller format, channel and outcome (ok, partial, failed, expired, or refused_<status>).",
    ["model", "caller_format", "channel", "status"],
)
RELAY_LATENCY = Histogram(
    "tokenhub_relay_latency_seconds",
    "Whole relayed calls, from the request to the last byte of the answer.",
    ["caller_format", "stream"],
    buckets=LATENCY_BUCKETS,
)
RELAY_TTFB = Histogram(
    "tokenhub_relay_ttfb_seconds",
    "From the request to the upstream's first byte (its answer's headers).",
    ["caller_format", "stream"],
    buckets=TTFB_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "tokenhub_upstream_errors",
    "Upstream failures by channel and class (auth, quota, rate_limit, server, timeout, connect).",
    ["channel", "kind"],
)
SETTLEMENT_BACKLOG = Gauge(
    "tokenhub_settlement_backlog",
    "Settlements waiting for their ledger statement, summed over this node's live workers.",
    multiprocess_mode="livesum",
)


def observe_many(histogram_child, values: list[float]) -> None:
    """`observe` for many values at once: one update per bucket touched and one for the sum.

    prometheus-client keeps a histogram child's buckets non-cumulative in `_buckets` (one per upper
    bound, exposition sums them) and the total in `_sum`, as `Histogram.observe` shows; this does
    what `observe` does, grouped (tests/foundation/test_metrics_and_call_logs.py checks the counts).
    """
    bounds = histogram_child._upper_bounds
    per_bucket: dict[int, int] = {}
    for value in values:
        index = bisect.bisect_left(bounds, value)
        per_bucket[index] = per_bucket.get(index, 0) + 1
    histogram_child._sum.inc(sum(values))
    for index, count in per_bucket.items():
        histogram_child._buckets[index].inc(count)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class StateCollector:
    """What is read at scrape time: breaker states, holds in flight, ledger totals."""

    _ledger: tuple[float, dict[str, float]] = (0.0, {})

    def collect(self):
        yield from self._breakers()
        yield from self._holds()
        yield from self._ledger_totals()

    def _breakers(self):
        from channels_app import health
        from channels_app.models import Channel, ChannelStatus

        family = GaugeMetricFamily(
            "tokenhub_breaker_open", "1 for each channel whose breaker is open now (it is skipped).", labels=["channel"]
        )
        active = list(Channel.objects.filter(status=ChannelStatus.ACTIVE).values_list("pk", "public_id"))
        states, _usage = health.look([pk for pk, _id in active], ())
        now = time.time()
        # Open breakers only: the exposition grows with failing channels, not with every channel listed.
        for pk, public_id in active:
            if health.is_open(states.get(pk), now):
                family.add_metric([public_id], 1.0)
        yield family

    def _holds(self):
        from django.db.models import Count, Sum

        from billing.models import Hold, HoldStatus

        found = Hold.objects.filter(status=HoldStatus.OPEN).aggregate(n=Count("id"), total=Sum("amount"))
        yield GaugeMetricFamily("tokenhub_holds_in_flight", "Calls holding money right now.", value=found["n"] or 0)
        yield GaugeMetricFamily(
            "tokenhub_holds_in_flight_usd", "USD held for calls in flight.", value=float(found["total"] or 0)
        )

    def _ledger_totals(self):
        from django.conf import settings

        cached_at, totals = StateCollector._ledger
        if time.monotonic() - cached_at > settings.TOKENHUB_METRICS_LEDGER_SECONDS or not totals:
            totals = _ledger_totals()
            StateCollector._ledger = (time.monotonic(), totals)
        family = GaugeMetricFamily(
            "tokenhub_ledger_usd",
            "Ledger totals by account kind: revenue, owner (earnings not yet moved or paid), user (outstanding "
            "balances), hold, paid_out, promotions, codes, adjustments.",
            labels=["kind"],
        )
        for kind, total in sorted(totals.items()):
            family.add_metric([kind], total)
        yield family


def _ledger_totals() -> dict[str, float]:
    """Each account kind's total: cached balances where kept, else the sum of its entries."""
    from django.db.models import Sum

    from billing.models import CACHED_KINDS, Account, Entry

    totals = {
        kind: float(total or 0)
        for kind, total in Account.objects.filter(kind__in=CACHED_KINDS)
        .values_list("kind")
        .annotate(total=Sum("balance"))
    }
    entries = (
        Entry.objects.exclude(account__kind__in=CACHED_KINDS).values_list("account__kind").annotate(total=Sum("amount"))
    )
    # Platform accounts hold the other side of users' credit: their sums are negative by design.
    totals.update({kind: float(total or 0) for kind, total in entries})
    return totals


def exposition() -> tuple[bytes, str]:
    """The text Prometheus scrapes: this node's workers merged (or this process), and the state read now."""
    from relay import observe

    observe.flush()  # this worker's calls of the last moments
    registry = CollectorRegistry()
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.MultiProcessCollector(registry)
    else:
        for metric in (RELAY_REQUESTS, RELAY_LATENCY, RELAY_TTFB, UPSTREAM_ERRORS, SETTLEMENT_BACKLOG):
            registry.register(_Registered(metric))
    registry.register(StateCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Registered:
    """A metric of this process, collected into a per-scrape registry."""

    def __init__(self, metric):
        self.metric = metric

    def collect(self):
        return self.metric.collect()
