"""One upstream attempt and the failover walk over a plan's channels.

Failover happens only before the first byte reaches the caller: connect errors, timeouts,
429, 5xx and a channel's own 401/402/403 move on to the next channel (bounded); a 400 caused by
the caller's request is returned at once. Every outcome is a health event for the channel.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from billing.pricing import usd
from channels_app import channels, health, providers, routing, spend
from channels_app.providers import client, probes
from channels_app.urlcheck import UnsafeUpstream

from . import observe

logger = logging.getLogger(__name__)

CALLER_FAULT_STATUSES = {400, 413, 422}


@dataclass
class Attempt:
    route: routing.Route
    key_position: int
    response: httpx.Response
    operation: str  # what was called upstream: chat, messages, embeddings or responses
    attempts: int = 1  # channels tried, this one included
    reservation: spend.Reservation | None = None  # the hold reserved against the channel's spend limits


@dataclass(frozen=True)
class Skipped:
    """A channel passed over before any upstream call (its owner's spend limit cannot take the hold)."""

    reason: str


@dataclass
class UpstreamFailure:
    """Why the walk ended without an answer: the caller's status and a safe message."""

    status: int
    message: str
    caller_fault_body: bytes | None = None  # a caller-caused 4xx from the upstream
    channel_format: str = ""  # the format that caller-caused error is in
    attempts: int = 0  # channels tried


def _disable_in_thread(channel_id: int, reason: str) -> None:
    try:
        channels.auto_disable(channel_id, reason)
    finally:
        connection.close()


async def _channel_failed(route: routing.Route, key_position: int, kind: str, detail: str, retry_after=None) -> None:
    observe.upstream_failed(route.public_id, kind)
    if kind in (health.AUTH, health.QUOTA):
        health.bench_key(route.channel_id, key_position, seconds=health.KEY_BENCH_SECONDS)
        if route.key_count <= 1 and route.auto_disable:
            what = "authentication failed" if kind == health.AUTH else "insufficient quota"
            reason = f"{detail} at {datetime.now(UTC):%H:%M} UTC ({what})"
            await sync_to_async(_disable_in_thread, thread_sensitive=False)(route.channel_id, reason)
        return
    if kind == health.RATE_LIMIT and route.key_count > 1:
        health.bench_key(route.channel_id, key_position, seconds=int(retry_after or health.KEY_BENCH_SECONDS))
        return
    health.record_failure(route.channel_id, kind, detail, retry_after)


def _pause_in_thread(channel_id: int, reason: str) -> None:
    try:
        channels.pause_for_excess(channel_id, reason)
    finally:
        connection.close()


async def over_reported(route: routing.Route, record) -> None:
    """The channel reported usage costing more than the call's hold: it was billed the hold, and this
    is a health event against the channel (repeated, it pauses it)."""
    logger.warning(
        "channel %s reported usage %s above the hold of call %s", route.public_id, record.excess_usd, record.request_id
    )
    if health.record_excess(route.channel_id):
        times, hours = settings.TOKENHUB_EXCESS_PAUSE_COUNT, settings.TOKENHUB_EXCESS_WINDOW_SECONDS / 3600
        reason = (
            f"reported usage above the call's hold {times} times within {hours:g} h "
            f"(last: call {record.request_id}, {usd(record.excess_usd)} over) at {datetime.now(UTC):%H:%M} UTC"
        )
        await sync_to_async(_pause_in_thread, thread_sensitive=False)(route.channel_id, reason)


def bind_output(outgoing: dict, operation: str, provider: str, budget: int | None) -> None:
    """Tell the upstream the output budget the hold was computed from, when the caller set none.

    The hold is the most a call can cost (billing charges no more), so an upstream left free to
    answer at length could only produce usage nobody pays for. The field is the one each API
    reads: OpenAI's own Chat Completions wants max_completion_tokens (its reasoning models refuse
    max_tokens), other OpenAI-format providers max_tokens, the Responses API max_output_tokens,
    Anthropic's Messages max_tokens.
    """
    if not budget:
        return
    if operation == "chat":
        field = providers.get(provider).chat_output_field
    else:
        field = "max_output_tokens" if operation == "responses" else "max_tokens"
    outgoing[field] = budget


def build_body(body: dict, route: routing.Route, operation: str, output_budget: int | None = None) -> bytes:
    outgoing = dict(body)
    outgoing["model"] = route.upstream_model
    bind_output(outgoing, operation, route.provider, output_budget)
    if operation == "chat" and outgoing.get("stream"):
        # Ask for the final usage chunk; it is stripped again if the caller did not ask for it.
        outgoing["stream_options"] = {**(outgoing.get("stream_options") or {}), "include_usage": True}
    return json.dumps(outgoing, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def open_stream(
    plan: routing.Plan,
    routes: list[routing.Route],
    prepared_for,
    forward_headers: dict[str, str],
    held: Decimal = Decimal(0),
) -> Attempt | UpstreamFailure:
    """Try the routes in order until one answers 2xx; returns the open (unread) response.

    A channel's word that the request is the caller's fault (400, 413, 422) is checked against the
    next channels (within TOKENHUB_MAX_ATTEMPTS): strangers' channels refusing everything must not
    block the model. If none answers, the caller gets the first refusal. No refusing channel is
    charged a health event: which of disagreeing channels is right cannot be told (a lax one would
    otherwise open an honest one's breaker with requests the honest one rightly refuses).
    """
    failures: list[str] = []
    skipped: list[str] = []
    refused: UpstreamFailure | None = None
    tried = 0
    for route in routes:
        if tried >= settings.TOKENHUB_MAX_ATTEMPTS:
            break
        outcome = await _attempt(plan, route, prepared_for, forward_headers, held)
        if isinstance(outcome, Skipped):  # no upstream called: it costs none of the attempts
            skipped.append(outcome.reason)
            continue
        tried += 1
        if isinstance(outcome, str):
            failures.append(outcome)
            continue
        if isinstance(outcome, UpstreamFailure):
            refused = refused or outcome
            continue
        outcome.attempts = tried
        return outcome
    if not tried and skipped:
        failure = UpstreamFailure(
            503,
            f"No channel can take this call now: {'; '.join(dict.fromkeys(skipped))}. Retry later, or ask "
            "for fewer output tokens (a call is held at the most it may cost).",
        )
    else:
        failure = refused if refused is not None else _summarise(failures)
    failure.attempts = tried
    return failure


async def _attempt(
    plan, route: routing.Route, prepared_for, forward_headers, held: Decimal
) -> Attempt | UpstreamFailure | Skipped | str:
    """One channel: its answer, a caller-caused refusal, or why it failed (a health event recorded).

    Whatever goes wrong here is this attempt's failure, so the walk goes on to the next channel; and
    whatever way this attempt ends without an answer (cancellation included), the channel's
    in-flight count is given back and its response closed.
    """
    keys = plan.upstream_keys(route.channel_id)
    if not keys:
        return "a channel has no usable key"
    counted = False
    reservation: spend.Reservation | None = None
    response: httpx.Response | None = None
    try:
        position = health.pick_key(route.channel_id, len(keys)) if len(keys) > 1 else 0
        prepared = prepared_for(route)
        spec = providers.get(route.provider)
        url = spec.endpoint(route.base_url, prepared.operation)
        headers = spec.auth_headers(keys[position])
        if route.api_format == "anthropic":
            headers.update(forward_headers)  # anthropic-version / anthropic-beta from the caller
        headers["content-type"] = "application/json"
        content = build_body(prepared.body, route, prepared.operation, prepared.output_budget)
        if route.spend_limits:  # the hold, the most this call can cost, fits the owner's limits or no call
            reserved = await spend.reserve(route.channel_id, route.public_id, route.spend_limits, held)
            if isinstance(reserved, str):
                spend.tell_owner(route.channel_id, reserved)
                return Skipped(f"a channel {reserved}" if reserved.startswith("has") else f"a channel is {reserved}")
            reservation = reserved
        if route.limited:  # only the channel actually called counts against its limits
            health.call_started(route.channel_id)
            counted = True
        try:
            response = await client.post_streaming(url, headers, content, route.channel_id)
        except UnsafeUpstream as exc:
            logger.warning("channel %s refused at connect: %s", route.public_id, exc)
            health.record_failure(route.channel_id, health.CONNECT, "address not allowed")
            return "a channel's upstream address is not allowed"
        except httpx.TimeoutException:
            await _channel_failed(route, position, health.TIMEOUT, "timeout")
            return "an upstream timed out"
        except httpx.LocalProtocolError:  # the channel's own key or URL cannot be put on a wire
            logger.warning("channel %s: request not sent: its key or URL holds bytes HTTP forbids", route.public_id)
            health.record_failure(route.channel_id, health.CONNECT, "request not sent: invalid key or URL")
            return "a channel could not be called"
        except httpx.TransportError as exc:
            await _channel_failed(route, position, health.CONNECT, f"connect error {type(exc).__name__}")
            return "an upstream could not be reached"
        except Exception as exc:  # the channel's own data (key, URL) could not make a request
            logger.warning("channel %s: request not sent: %s", route.public_id, type(exc).__name__)
            health.record_failure(route.channel_id, health.CONNECT, f"request not sent: {type(exc).__name__}")
            return "a channel could not be called"
        if response.is_success:
            if route.channel_id in plan.probing:
                health.record_success(route.channel_id)
            attempt = Attempt(route, position, response, prepared.operation, reservation=reservation)
            response, counted, reservation = None, False, None
            return attempt  # its response, in-flight count and reservation now belong to the caller
        return await _refused(route, position, response)
    except Exception as exc:
        logger.warning("channel %s: attempt failed: %s", route.public_id, type(exc).__name__)
        return "a channel failed unexpectedly"
    finally:
        if response is not None:
            await response.aclose()
        if counted:
            health.call_finished(route.channel_id)
        if reservation is not None:
            spend.settle(reservation, Decimal(0))


async def _refused(route: routing.Route, position: int, response: httpx.Response) -> UpstreamFailure | str:
    error_body = await response.aread()
    if response.status_code in CALLER_FAULT_STATUSES:
        return UpstreamFailure(response.status_code, "the upstream rejected the request", error_body, route.api_format)
    kind = probes.classify(
        providers.get(route.provider), response.status_code, error_body[:2000].decode("utf-8", "replace")
    )
    if kind is not None:  # None, e.g. 404: this channel cannot serve it; not a health problem
        await _channel_failed(route, position, kind, f"HTTP {response.status_code}", probes.retry_after(response))
    return f"an upstream answered {response.status_code}"


def _summarise(failures: list[str]) -> UpstreamFailure:
    text = "; ".join(dict.fromkeys(failures)) or "no channel was tried"
    if all("timed out" in f for f in failures) and failures:
        return UpstreamFailure(504, f"The upstream timed out ({len(failures)} attempt(s)): {text}.")
    status = 503 if any("429" in f for f in failures) else 502
    return UpstreamFailure(status, f"No upstream could answer ({len(failures)} attempt(s)): {text}.")
