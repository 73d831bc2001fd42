"""Which channels may serve a call, in which order, and why not when none can.

Routing policy (owners are strangers; see docs/security.md). Channels are tried by priority,
highest first, and within a priority in weighted random order. The priority is the platform's:
only staff set it (admin, `add_channel`), within -100..100; owners choose a weight of 1..100, so
no owner can take a model's traffic by outbidding everyone with a huge number. A new channel is on
probation until staff approve it or it passes a channel test after TOKENHUB_PROBATION_CALLS
completed calls: within its priority it is tried after every established channel, its weight
counted as 1. That only orders candidates: a channel on probation serves normally when it is the
only usable one (the others excluded, paused, cooling down, or absent). A private channel is a
candidate only for its owner's and its shared users' calls (channels_app/sharing.py).

The routing data (catalog, aliases, channels) is a snapshot held in process
memory. Any change bumps a version number in the cache; each process checks it
at most once a second, so a change made on one node is seen by all within
seconds, and a request costs no query for routing.
"""

from __future__ import annotations

import difflib
import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from . import crypto, health, providers, spend
from .models import LOW_BALANCE_REASON, CatalogModel, Channel, ChannelShare, ChannelStatus, ModelAlias, Visibility

logger = logging.getLogger(__name__)

VERSION_KEY = "routing:version"
OWNER_WEIGHT_MAX = 100  # an owner's channels together, per priority tier: owner_input.WEIGHT_RANGE's top


@dataclass(frozen=True)
class ModelInfo:
    name: str
    aliases: tuple[str, ...]
    mode: str
    # USD per 1M tokens: input, output, cache_read, cache_write, reasoning (None: not set).
    # None as a whole when the model has no input/output price: it is not callable.
    prices: dict[str, Decimal | None] | None
    default_output_tokens: int
    max_output_tokens: int | None
    context_window: int | None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Route:
    channel_id: int
    public_id: str
    name: str
    owner_id: int
    provider: str
    api_format: str
    base_url: str
    upstream_model: str
    owner_cut: Decimal
    priority: int
    weight: int
    status: str
    status_reason: str
    key_count: int
    rpm_limit: int | None = None
    concurrency_limit: int | None = None
    auto_disable: bool = True
    on_probation: bool = False
    # A private channel's users besides its owner; None: public.
    shared_with: frozenset[int] | None = None
    spend_limits: spend.Limits = field(default_factory=spend.Limits)

    @property
    def limited(self) -> bool:
        return bool(self.rpm_limit or self.concurrency_limit)

    def open_to(self, user_id: int | None) -> bool:
        """May this user's calls use the channel? (None: an operator's view, which sees every channel.)"""
        return self.shared_with is None or user_id is None or user_id == self.owner_id or user_id in self.shared_with


@dataclass
class Snapshot:
    models: dict[str, ModelInfo] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # any name or alias -> canonical name
    routes: dict[str, list[Route]] = field(default_factory=dict)  # canonical name -> every channel listing it
    unknown_listed: dict[str, list[str]] = field(default_factory=dict)  # name -> channels listing it
    # Decrypted upstream keys per channel id: process memory only, never cached elsewhere or shown.
    upstream_keys: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False)


class Refusal(Exception):
    """No channel for this call. `message` is safe for callers; `detail` is the admin's full story."""

    def __init__(self, status: int, message: str, detail: str | None = None, code: str = ""):
        super().__init__(message)
        self.status, self.message, self.detail, self.code = status, message, detail or message, code


@dataclass(frozen=True)
class Plan:
    model: ModelInfo
    requested: str
    routes: list[Route]
    # Channels let through as a half-open probe: a success must close their breaker.
    probing: frozenset[int] = frozenset()
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)

    def upstream_keys(self, channel_id: int) -> tuple[str, ...]:
        return self.snapshot.upstream_keys.get(channel_id, ()) if self.snapshot else ()


def _prices(model: CatalogModel) -> dict[str, Decimal | None] | None:
    if not model.priced:
        return None
    return {
        "input": model.input_price,
        "output": model.output_price,
        "cache_read": model.cache_read_price,
        "cache_write": model.cache_write_price,
        "reasoning": model.reasoning_price,
    }


def build_snapshot() -> Snapshot:
    snap = Snapshot()
    aliases: dict[int, list[str]] = defaultdict(list)
    for alias, model_id in ModelAlias.objects.values_list("alias", "model_id"):
        aliases[model_id].append(alias)
    for model in CatalogModel.objects.all():
        info = ModelInfo(
            name=model.name,
            aliases=tuple(sorted(aliases[model.pk])),
            mode=model.mode,
            prices=_prices(model),
            default_output_tokens=model.default_output_tokens,
            max_output_tokens=model.max_output_tokens,
            context_window=model.context_window,
        )
        snap.models[model.name] = info
        snap.names[model.name] = model.name
        for alias in info.aliases:
            snap.names[alias] = model.name
    # A deactivated owner's channels leave the marketplace with them (and earn nothing more).
    channels = Channel.objects.filter(owner__is_active=True).prefetch_related("keys")
    shares: dict[int, set[int]] = defaultdict(set)
    for channel_id, user_id in ChannelShare.objects.filter(user__is_active=True).values_list("channel_id", "user_id"):
        shares[channel_id].add(user_id)
    for channel in channels:
        private = channel.visibility == Visibility.PRIVATE
        spec = providers.PROVIDERS.get(channel.provider)
        if spec is None:  # its provider module was removed: the channel cannot be called
            logger.warning("channel %s names unknown provider %r; not routed", channel.public_id, channel.provider)
            continue
        if channel.status == ChannelStatus.ACTIVE:
            snap.upstream_keys[channel.pk] = _decrypt_keys(channel)
        mapping = channel.model_mapping or {}
        for listed in channel.model_names:
            canonical = snap.names.get(listed)
            if canonical is None:
                if not private:  # a private channel's listing is nobody else's business
                    snap.unknown_listed.setdefault(listed, []).append(channel.public_id)
                continue
            upstream = mapping.get(listed) or mapping.get(canonical) or listed
            snap.routes.setdefault(canonical, []).append(
                Route(
                    channel_id=channel.pk,
                    public_id=channel.public_id,
                    name=channel.name,
                    owner_id=channel.owner_id,
                    provider=channel.provider,
                    api_format=spec.wire_format,
                    base_url=channel.base_url,
                    upstream_model=upstream,
                    owner_cut=channel.owner_cut,
                    priority=channel.priority,
                    weight=channel.weight,
                    status=channel.status,
                    status_reason=channel.status_reason,
                    key_count=len(channel.keys.all()),
                    rpm_limit=channel.rpm_limit,
                    concurrency_limit=channel.concurrency_limit,
                    auto_disable=channel.auto_disable,
                    on_probation=channel.on_probation,
                    shared_with=frozenset(shares[channel.pk]) if private else None,
                    spend_limits=spend.Limits(channel.daily_spend_limit_usd, channel.monthly_spend_limit_usd),
                )
            )
    return snap


def _decrypt_keys(channel: Channel) -> tuple[str, ...]:
    keys = []
    for key in channel.keys.all():
        try:
            keys.append(crypto.decrypt(key.key_id, key.ciphertext))
        except crypto.DecryptionError:
            logger.error(
                "channel %s key %s cannot be decrypted with the configured keys", channel.public_id, key.position
            )
    return tuple(keys)


class _Holder:
    def __init__(self):
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        self.version = None
        self.checked_at = 0.0
        self.built_at = 0.0


_holder = _Holder()


def _fresh() -> tuple[Snapshot | None, object]:
    """(the snapshot if still current, the cache's version); at most one cache read per interval."""
    now = time.monotonic()
    if _holder.snapshot is not None and now - _holder.built_at > settings.TOKENHUB_ROUTING_MAX_AGE_SECONDS:
        # A change whose notice never reached Redis (it was out of reach then) still arrives in time.
        return None, _holder.version
    if _holder.snapshot is not None and now - _holder.checked_at < settings.TOKENHUB_ROUTING_CHECK_SECONDS:
        return _holder.snapshot, _holder.version
    version = cache.get(VERSION_KEY)
    if version is None:
        # A restarted (or unreachable) Redis has lost the version, and a change may have been made
        # meanwhile: rebuild, under a new version (while Redis is out of reach, at every check).
        version = uuid.uuid4().hex
        if not cache.add(VERSION_KEY, version, timeout=None):
            version = cache.get(VERSION_KEY)
        return None, version
    if _holder.snapshot is not None and version == _holder.version:
        _holder.checked_at = now
        return _holder.snapshot, version
    return None, version


def _rebuild(version) -> Snapshot:
    with _holder.lock:
        snap = build_snapshot()
        _holder.snapshot, _holder.version = snap, version
        _holder.checked_at = _holder.built_at = time.monotonic()
        return snap


def snapshot() -> Snapshot:
    """The current routing snapshot (sync callers)."""
    snap, version = _fresh()
    return snap if snap is not None else _rebuild(version)


def _rebuild_in_thread(version) -> Snapshot:
    try:
        return _rebuild(version)
    finally:
        connection.close()


async def asnapshot() -> Snapshot:
    """The current routing snapshot (async callers): rebuilt in a worker thread only when it changed."""
    snap, version = _fresh()
    if snap is not None:
        return snap
    return await sync_to_async(_rebuild_in_thread, thread_sensitive=False)(version)


def invalidate() -> None:
    """Call after a routing change commits: every process rebuilds within TOKENHUB_ROUTING_CHECK_SECONDS.

    The version is a random token, not a counter, so a cleared or restarted cache can never
    make an old version look current again.
    """
    cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    _holder.snapshot = None


def invalidate_on_commit() -> None:
    transaction.on_commit(invalidate)


def _weighted_order(routes: list[Route]) -> list[Route]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys), one owner's share bounded.

    An owner's channels in a tier share at most OWNER_WEIGHT_MAX between them: ten channels at the
    top weight draw no more first places than one, so opening more channels cannot capture a model.
    """
    totals: dict[int, int] = defaultdict(int)
    for route in routes:
        totals[route.owner_id] += route.weight
    scale = {owner: min(1.0, OWNER_WEIGHT_MAX / total) for owner, total in totals.items()}
    return sorted(routes, key=lambda r: random.random() ** (1.0 / (r.weight * scale[r.owner_id])), reverse=True)


def _tier_order(routes: list[Route]) -> list[Route]:
    """Established channels by weight, then those on probation in a uniform shuffle (weight 1 each)."""
    established = [r for r in routes if not r.on_probation]
    probation = [r for r in routes if r.on_probation]
    return _weighted_order(established) + random.sample(probation, len(probation))


def order_by_priority(routes: list[Route]) -> list[Route]:
    tiers: dict[int, list[Route]] = defaultdict(list)
    for route in routes:
        tiers[route.priority].append(route)
    return [route for priority in sorted(tiers, reverse=True) for route in _tier_order(tiers[priority])]


def _exclusion(route: Route, state: health.BreakerState | None, usage: tuple[int, ...]) -> tuple[str, str] | None:
    """Why this channel cannot serve now, as (what a caller may read, the full story for the owner and staff).

    Callers never see a status reason as written: it can name the staff member who paused a channel
    or its owner's upstream balance.
    """
    if route.status == ChannelStatus.PAUSED:
        if route.status_reason in ("", "paused by owner"):
            return "disabled by owner", "disabled by owner"
        if route.status_reason.startswith(LOW_BALANCE_REASON):
            return "paused: its upstream balance is low", f"paused: {route.status_reason}"
        return "paused", f"paused: {route.status_reason}"
    if route.status == ChannelStatus.SUSPENDED:
        return "suspended by staff", f"suspended: {route.status_reason}"
    if route.status == ChannelStatus.AUTO_DISABLED:
        return "auto-disabled after its upstream refused it", f"auto-disabled: {route.status_reason}"
    if route.key_count == 0:
        return "has no upstream key", "has no upstream key"
    requests_this_minute, in_flight, spent_today, spent_this_month = (*usage, 0, 0, 0, 0)[:4]
    if route.spend_limits:
        reason = spend.exceeded(route.spend_limits, spent_today, spent_this_month)
        if reason:
            limits = route.spend_limits
            return reason, f"{reason} (daily ${limits.daily or '-'}, monthly ${limits.monthly or '-'})"
    if route.rpm_limit and requests_this_minute >= route.rpm_limit:
        reason = f"at its limit of {route.rpm_limit} requests per minute"
        return reason, reason
    if route.concurrency_limit and in_flight >= route.concurrency_limit:
        reason = f"at its limit of {route.concurrency_limit} concurrent calls"
        return reason, reason
    if not health.is_usable(route.channel_id, state):
        return state.describe(), state.describe()
    return None


def resolve(requested: str) -> ModelInfo | None:
    snap = snapshot()
    canonical = snap.names.get(requested.strip())
    return snap.models.get(canonical) if canonical else None


async def aplan(requested: str, allowed_models=(), exclude=frozenset(), user_id: int | None = None) -> Plan:
    return plan(requested, allowed_models, exclude, snap=await asnapshot(), user_id=user_id)


def plan(
    requested: str,
    allowed_models=(),
    exclude=frozenset(),
    snap: Snapshot | None = None,
    user_id: int | None = None,
) -> Plan:
    """Ordered fallbacks for `requested` for `user_id`'s call, or a Refusal that explains every candidate.

    Private channels not shared with the user are left out before anything else: the refusal counts
    and explains only the channels this user could have used.
    """
    snap = snap or snapshot()
    name = requested.strip()
    canonical = snap.names.get(name)
    if canonical is None:
        raise _unknown_model(snap, name)
    model = snap.models[canonical]
    if allowed_models and not any(n in allowed_models for n in (name, *model.names)):
        raise Refusal(403, f'This API key may not use model "{name}".', code="model_not_allowed")
    if model.prices is None:
        raise Refusal(
            503, f'Model "{name}" has no price in the catalog yet, so calls to it are refused.', code="model_unpriced"
        )
    candidates = [r for r in snap.routes.get(canonical, []) if r.channel_id not in exclude and r.open_to(user_id)]
    if not candidates:
        raise Refusal(503, f'No channel serves "{name}" right now.', code="no_channel")
    states, usage = health.look(
        [r.channel_id for r in candidates],
        [r.channel_id for r in candidates if r.limited],
        [r.channel_id for r in candidates if r.spend_limits],
    )
    usable, reasons = [], []
    for route in order_by_priority(candidates):
        reason = _exclusion(route, states.get(route.channel_id), usage.get(route.channel_id, (0, 0, 0, 0)))
        if reason is None:
            usable.append(route)
        else:
            reasons.append((route, reason))
    if usable:
        probing = frozenset(r.channel_id for r in usable if r.channel_id in states)
        return Plan(model=model, requested=name, routes=usable, probing=probing, snapshot=snap)
    raise _explained_refusal(name, candidates, reasons)


def _explained_refusal(name: str, candidates: list[Route], reasons) -> Refusal:
    count = len(candidates)
    listing = f"{count} channel{'s' if count != 1 else ''} list{'s' if count == 1 else ''} it"
    # Callers see numbered channels and reasons; admins see public ids and names.
    public = "; ".join(
        f"#{i}{' (private, shared with you)' if route.shared_with is not None else ''} {reason[0]}"
        for i, (route, reason) in enumerate(reasons, start=1)
    )
    full = "; ".join(f"{route.public_id} ({route.name}) {reason[1]}" for route, reason in reasons)
    return Refusal(
        503,
        f'no channel can serve "{name}": {listing} — {public}',
        detail=f'no channel can serve "{name}": {listing} — {full}',
        code="no_healthy_channel",
    )


def _unknown_model(snap: Snapshot, name: str) -> Refusal:
    if name in snap.unknown_listed:
        return Refusal(
            404,
            f'Model "{name}" is listed by a channel but missing from the catalog; an admin must add it.',
            code="model_not_in_catalog",
        )
    close = difflib.get_close_matches(name, list(snap.names), n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else "."
    return Refusal(404, f'unknown model "{name}"{hint}', code="model_not_found")
