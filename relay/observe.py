"""What an operator sees of each relayed call: one log line (logger `tokenhub.calls`) and the metrics.

Recorded once per call, where it ends: a settlement or release (relay/settlement.py), or a refusal
before any upstream call (relay/pipeline.py). Never a secret, a prompt or an answer: ids, the key's
displayed prefix, the catalog's model name, the channel's public id, counts, times and the charge.
Labels are bounded: the model is the catalog's canonical name (a refusal before routing has "-"),
never what a caller typed.
"""

from __future__ import annotations

import logging
import time

from tokenhub import metrics

logger = logging.getLogger("tokenhub.calls")


def _line(fields: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in fields.items())


def call_ended(call, record) -> None:
    """A call that reached the ledger's end (settled or released): its record says how it went."""
    stream = "true" if call.stream else "false"
    metrics.RELAY_REQUESTS.labels(call.plan.model.name, call.caller_format, record.channel or "-", record.status).inc()
    latency = time.perf_counter() - call.started
    metrics.RELAY_LATENCY.labels(call.caller_format, stream).observe(latency)
    ttfb = call.answered_at - call.started if call.answered_at else None
    if ttfb is not None:
        metrics.RELAY_TTFB.labels(call.caller_format, stream).observe(ttfb)
    fields = {
        "request_id": call.request_id,
        "user_id": call.identity.user_id,
        "key_prefix": call.identity.prefix,
        "model": call.plan.model.name,
        "channel": record.channel or "-",
        "attempts": call.attempts,
        "status": record.status,
        "latency_ms": int(latency * 1000),
        "ttfb_ms": int(ttfb * 1000) if ttfb is not None else None,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": format(record.cost_usd, "f"),
    }
    logger.info("call %s", _line(fields), extra={"fields": fields})


def call_refused(request, caller_format: str, status: int, code: str, identity=None, started: float = 0.0) -> None:
    """A call refused before any upstream call (nothing charged)."""
    outcome = f"refused_{status}"
    metrics.RELAY_REQUESTS.labels("-", caller_format, "-", outcome).inc()
    fields = {
        "request_id": getattr(request, "request_id", ""),
        "user_id": identity.user_id if identity else None,
        "key_prefix": identity.prefix if identity else None,
        "model": "-",
        "channel": "-",
        "attempts": 0,
        "status": outcome,
        "code": code,
        "latency_ms": int((time.perf_counter() - started) * 1000) if started else None,
        "ttfb_ms": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": "0",
    }
    logger.info("call %s", _line(fields), extra={"fields": fields})


def upstream_failed(channel: str, kind: str) -> None:
    metrics.UPSTREAM_ERRORS.labels(channel, kind).inc()
