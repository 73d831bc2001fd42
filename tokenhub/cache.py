"""Redis cache backend whose connection pool is shared by the whole process, and which serves on
when Redis is unreachable.

Django keeps one cache object per thread and per async context, and each RedisCache
object builds its own connection pool: under ASGI every request would open a new TCP
connection to Redis (measured: 201 new connections for 200 relayed calls). Here the
client, and so its pool, is shared per location and options (redis-py pools are
thread-safe and reset themselves after a fork).

Redis holds no money and nothing that cannot be rebuilt: cached key identities, routing's version,
breaker states, rate-limit and concurrency counters. So an unreachable Redis is a cache miss, not a
failure (docs/guarantees.md, "Redis stopped"): reads find nothing, writes are dropped, `add` claims
(a counter starts at one, a lock is taken), and the relay keeps serving from PostgreSQL, with those
limits unenforced until Redis is back. After a failure the process leaves Redis alone for
`DOWN_SECONDS`, so an outage costs each request no more than one failed connection attempt a second.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

_clients: dict = {}
_lock = threading.Lock()

DOWN_SECONDS = 1.0
_down_until = 0.0  # monotonic time before which Redis is not tried again


_strict = False  # operators' commands: a Redis failure is an error, not a miss (see strict())


def strict():
    """Within this, cache operations raise on an unreachable Redis instead of serving without it.

    A command that changes what the nodes cache (a deactivation, prices, channels) must not report
    success when its invalidation never reached them."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        global _strict
        previous, _strict = _strict, True
        try:
            yield
        finally:
            _strict = previous

    return scope()


def unavailable() -> bool:
    """True while this process treats Redis as down (its last attempt failed within DOWN_SECONDS)."""
    return time.monotonic() < _down_until


def _or(fallback):
    """Run the cache operation; while Redis is unreachable, return `fallback(*args, **kwargs)` instead."""

    def decorate(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            global _down_until
            if _strict:
                return method(self, *args, **kwargs)
            if unavailable():
                return fallback(*args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if not unavailable():
                    log.warning("Redis unreachable (%s); serving without it", type(exc).__name__)
                _down_until = time.monotonic() + DOWN_SECONDS
                return fallback(*args, **kwargs)

        return call

    return decorate


def _nothing(*args, **kwargs):
    return None


def _default(key, default=None, *args, **kwargs):
    return default


class SharedPoolRedisCache(RedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.setdefault(key, self._class(self._servers, **self._options))
        return client

    get = _or(_default)(RedisCache.get)
    get_many = _or(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _or(lambda *a, **k: False)(RedisCache.has_key)
    add = _or(lambda *a, **k: True)(RedisCache.add)
    set = _or(_nothing)(RedisCache.set)
    set_many = _or(lambda *a, **k: [])(RedisCache.set_many)
    touch = _or(lambda *a, **k: False)(RedisCache.touch)
    delete = _or(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _or(_nothing)(RedisCache.delete_many)
    clear = _or(lambda *a, **k: False)(RedisCache.clear)
    incr = _or(lambda key, delta=1, *a, **k: delta)(RedisCache.incr)

    @_or(lambda key, amount, timeout: amount)
    def count(self, key: str, amount: int, timeout: int) -> int:
        """INCRBY, and an expiry for a counter that has none, in one round trip (tokenhub.lib.counters).

        Django's add-then-incr takes three (SET NX, EXISTS, INCRBY). MULTI makes the pair atomic, so
        no counter is left without an expiry; SET NX keeps a running window's first expiry.
        """
        key = self.make_and_validate_key(key)
        pipeline = self._cache.get_client(key, write=True).pipeline(transaction=True)
        pipeline.set(key, 0, ex=timeout, nx=True)
        pipeline.incrby(key, amount)
        return pipeline.execute()[1]

    # KEYS: the day and month counters, then the counters' epoch; ARGV: the amount, then each counter's
    # limit (-1: none). {0, epoch}: added to both; {i, ""}: counter i would pass its limit (nothing
    # added); {-1, ""}: a counter or the epoch is missing, so the caller seeds them and asks again.
    RESERVE_SCRIPT = """
    local amount = tonumber(ARGV[1])
    local epoch = redis.call('GET', KEYS[3])
    if not epoch then return {-1, ''} end
    for i = 1, 2 do
        local value = redis.call('GET', KEYS[i])
        if not value then return {-1, ''} end
        local limit = tonumber(ARGV[1 + i])
        if limit >= 0 and tonumber(value) + amount > limit then return {i, ''} end
    end
    for i = 1, 2 do redis.call('INCRBY', KEYS[i], amount) end
    return {0, epoch}
    """

    @_or(lambda keys, amount, limits: (0, ""))
    def reserve(self, keys: list[str], amount: int, limits: list[int]) -> tuple[int, str]:
        """Add `amount` to both counters if neither passes its limit, atomically (channels_app/spend.py)."""
        made = [self.make_and_validate_key(key) for key in keys]
        client = self._cache.get_client(made[0], write=True)
        outcome, epoch = client.eval(self.RESERVE_SCRIPT, len(made), *made, amount, *limits)
        return int(outcome), epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    @_or(lambda key, value, timeout: False)
    def seed(self, key: str, value: int, timeout: int) -> bool:
        """SET NX with an expiry: the first of concurrent seeders wins, the others keep its value."""
        key = self.make_and_validate_key(key)
        return bool(self._cache.get_client(key, write=True).set(key, value, ex=timeout, nx=True))

    # KEYS: the counters, then their epoch; ARGV: the change (spent - reserved), what was spent, the
    # reservation's epoch. Counters re-read since the reservation (another epoch) never held it: they
    # get the whole spend instead of the change, which would take off a hold they never had.
    ADJUST_SCRIPT = """
    local change = tonumber(ARGV[1])
    if redis.call('GET', KEYS[#KEYS]) ~= ARGV[3] then change = tonumber(ARGV[2]) end
    for i = 1, #KEYS - 1 do
        if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], change) end
    end
    return 0
    """

    @_or(_nothing)
    def adjust_existing(self, keys: list[str], change: int, spent: int, epoch: str) -> None:
        """Correct the counters that exist by a settled reservation (a lost counter is re-read, not made up)."""
        made = [self.make_and_validate_key(key) for key in keys]
        self._cache.get_client(made[0], write=True).eval(self.ADJUST_SCRIPT, len(made), *made, change, spent, epoch)
