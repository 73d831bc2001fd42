"""sk-hub API keys: generation, hashing, look-up from a request, revocation.

The full key exists only in the creator's response; the database holds its
SHA-256 hash (unique, indexed) and a short display prefix. Look-ups are cached
by hash, so a request with a known key costs no query; revocation and edits
delete the cache entry. An unknown hash is cached too, briefly, as a "no such
key" marker, so a stream of bad keys costs one query per distinct key; creating
a key deletes the marker for its hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from . import audit
from .models import ApiKey, KeyScope, User

KEY_PREFIX = "sk-hub-"
# 36 random bytes -> 48 URL-safe characters after the prefix.
RANDOM_BYTES = 36
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6


def generate_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(RANDOM_BYTES)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def looks_like_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and len(raw_key) > len(KEY_PREFIX) + 40


@dataclass(frozen=True)
class KeyIdentity:
    """What a request needs to know about its key; safe to cache (no secret in it)."""

    key_id: int
    public_id: str
    user_id: int
    name: str
    allowed_models: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    spend_cap_usd: Decimal | None
    scope: str = KeyScope.RELAY
    user_active: bool = True
    payment_hold: bool = False
    prefix: str = ""  # the key's displayed start (sk-hub-…), for logs: never the key

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this key may not be used now, or None."""
        if not self.user_active:
            return "This API key's account has been deactivated; its keys no longer work."
        if self.payment_hold:
            return (
                "This account is on hold: a top-up it had already spent was refunded or charged back. "
                "Its keys work again once the shortfall is paid (the order page says how much)."
            )
        if self.revoked:
            return "This API key has been revoked."
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return f"This API key expired at {self.expires_at:%Y-%m-%d %H:%M} UTC."
        return None


def _identity(key: ApiKey) -> KeyIdentity:
    return KeyIdentity(
        key_id=key.pk,
        public_id=key.public_id,
        user_id=key.user_id,
        name=key.name,
        allowed_models=tuple(key.allowed_models or ()),
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        spend_cap_usd=key.spend_cap_usd,
        scope=key.scope,
        user_active=key.user.is_active,
        payment_hold=key.user.payment_hold,
        prefix=key.prefix,
    )


def _cache_key(key_hash: str) -> str:
    # v4: identities gained payment_hold (v3 their prefix, v2 scope and user_active); never read a pickle
    # of an old shape.
    return f"apikey:v4:{key_hash}"


# The cached value for "no key has this hash". Short-lived: it only has to absorb a burst of
# retries with the same bad key, and every node drops it within the local window after a create.
MISSING = "missing"
MISSING_SECONDS = 60


def normalise_model_list(names) -> list[str]:
    """Trim and de-duplicate, keeping case and order: invisible whitespace must not hide a model."""
    seen: dict[str, None] = {}
    for name in names or ():
        cleaned = str(name).strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def create_key(
    user: User,
    name: str,
    *,
    expires_at: datetime | None = None,
    allowed_models=(),
    spend_cap_usd: Decimal | None = None,
    scope: str = KeyScope.RELAY,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key, which is never retrievable again."""
    raw_key = generate_raw_key()
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user,
            name=name.strip() or "default",
            prefix=raw_key[:DISPLAY_PREFIX_LENGTH],
            key_hash=hash_key(raw_key),
            expires_at=expires_at,
            allowed_models=normalise_model_list(allowed_models),
            spend_cap_usd=spend_cap_usd,
            scope=scope,
        )
        audit.record("key.created", owner_id=user.pk, target=f"key:{key.public_id}", after=described(key))
    return key, raw_key


def described(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "spend_cap_usd": key.spend_cap_usd,
        "allowed_models": key.allowed_models,
        "expires_at": key.expires_at,
    }


def _load_identity(key_hash: str) -> KeyIdentity | None:
    key = ApiKey.objects.filter(key_hash=key_hash).select_related("user").first()
    if key is None:
        cache.set(_cache_key(key_hash), MISSING, timeout=MISSING_SECONDS)
        return None
    identity = _identity(key)
    cache.set(_cache_key(key_hash), identity, timeout=settings.TOKENHUB_KEY_CACHE_SECONDS)
    return identity


def _cached(key_hash: str) -> KeyIdentity | str | None:
    """The shared cache's answer: an identity, MISSING, or None when it knows nothing."""
    found = cache.get(_cache_key(key_hash))
    return found if isinstance(found, KeyIdentity) or found == MISSING else None


def lookup(raw_key: str) -> KeyIdentity | None:
    """The identity behind a presented key (usable or not), or None if unknown."""
    if not looks_like_key(raw_key):
        return None
    key_hash = hash_key(raw_key)
    found = _cached(key_hash)
    if found is None:
        return _load_identity(key_hash)
    return None if found == MISSING else found


def _load_in_thread(key_hash: str) -> KeyIdentity | None:
    try:
        return _load_identity(key_hash)
    finally:
        connection.close()  # give the pooled connection back at once


# key hash -> (identity, monotonic expiry): the relay's per-process copy, so a busy key costs no
# round trip at all. A revocation or deactivation reaches this process at once and the others
# within TOKENHUB_KEY_LOCAL_SECONDS. Unknown hashes have their own table, so a flood of made-up
# keys can fill only that one and never evicts the copies of real keys.
_local: dict[str, tuple[KeyIdentity, float]] = {}
_local_missing: dict[str, float] = {}
LOCAL_LIMIT = 10_000


def _remember_locally(key_hash: str, identity: KeyIdentity | None, now: float) -> None:
    window = settings.TOKENHUB_KEY_LOCAL_SECONDS
    if window <= 0:
        return
    table = _local if identity is not None else _local_missing
    if len(table) >= LOCAL_LIMIT:
        table.clear()
    if identity is not None:
        _local[key_hash] = (identity, now + window)
    else:
        _local_missing[key_hash] = now + min(window, MISSING_SECONDS)


async def alookup(raw_key: str) -> KeyIdentity | None:
    """For the relay: process memory first, then the shared cache, and only then the database."""
    if not looks_like_key(raw_key):
        return None
    key_hash = hash_key(raw_key)
    now = time.monotonic()
    found = _local.get(key_hash)
    if found is not None and found[1] > now:
        return found[0]
    if _local_missing.get(key_hash, 0) > now:
        return None
    cached = _cached(key_hash)
    if cached is None:
        identity = await sync_to_async(_load_in_thread, thread_sensitive=False)(key_hash)
    else:
        identity = None if cached == MISSING else cached
    _remember_locally(key_hash, identity, now)
    return identity


def forget(key: ApiKey) -> None:
    """Drop the cached identity (or "no such key" marker) so the next request reads the row again."""
    _local.pop(key.key_hash, None)
    _local_missing.pop(key.key_hash, None)
    cache.delete(_cache_key(key.key_hash))


def forget_user(user_id: int) -> None:
    """Drop the cached identities of every key of a user (after a change to the user itself)."""
    hashes = list(ApiKey.objects.filter(user_id=user_id).values_list("key_hash", flat=True))
    for key_hash in hashes:
        _local.pop(key_hash, None)
    cache.delete_many([_cache_key(key_hash) for key_hash in hashes])


def revoke_key(key: ApiKey) -> bool:
    """Revoke once; returns False when it was already revoked."""
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            audit.record("key.revoked", owner_id=key.user_id, target=f"key:{key.public_id}", after={"name": key.name})
    forget(key)
    key.refresh_from_db(fields=["revoked_at"])
    return bool(changed)


# key id -> monotonic time of this process's last last_used_at write.
_last_touch: dict[int, float] = {}


def touch(key_id: int) -> bool:
    """Record use without a write per request: at most one UPDATE per key per interval per process."""
    now = time.monotonic()
    last = _last_touch.get(key_id)
    if last is not None and now - last < settings.TOKENHUB_KEY_TOUCH_SECONDS:
        return False
    _last_touch[key_id] = now
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
    return True


def _touch_in_thread(key_id: int) -> bool:
    try:
        return touch(key_id)
    finally:
        connection.close()


def should_touch(key_id: int) -> bool:
    last = _last_touch.get(key_id)
    return last is None or time.monotonic() - last >= settings.TOKENHUB_KEY_TOUCH_SECONDS


async def atouch(key_id: int) -> None:
    """Only hops to a thread when a write is due (about once a minute per key)."""
    if should_touch(key_id):
        await sync_to_async(_touch_in_thread, thread_sensitive=False)(key_id)
