"""The one counter helper (tokenhub.lib.counters), on Redis in the services run and on local memory."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from tokenhub.lib.counters import count, uncount


def test_a_counter_counts_from_its_first_amount():
    key = f"test-count:{uuid.uuid4().hex}"
    assert count(key, timeout=60) == 1
    assert count(key, timeout=60) == 2
    assert count(key, 5, timeout=60) == 7
    assert cache.get(key) == 7  # readable by get_many, as the channels' limits are


def test_taking_one_off_and_an_absent_counter():
    key = f"test-count:{uuid.uuid4().hex}"
    uncount(key)  # absent: nothing happens, nothing is created
    assert cache.get(key) is None
    count(key, 3, timeout=60)
    uncount(key)
    assert cache.get(key) == 2


@pytest.mark.services
def test_on_redis_a_count_is_one_round_trip_and_keeps_its_first_expiry(monkeypatch):
    key = f"test-count:{uuid.uuid4().hex}"
    client = cache._cache.get_client(None)
    sent = []
    execute = type(client.pipeline()).execute

    def counted(pipeline, *args, **kwargs):
        sent.append(len(pipeline.command_stack))
        return execute(pipeline, *args, **kwargs)

    monkeypatch.setattr(type(client.pipeline()), "execute", counted)
    count(key, timeout=60)
    count(key, timeout=3600)
    assert sent == [2, 2]  # SET NX EX and INCRBY, sent together each time
    assert 0 < client.ttl(cache.make_and_validate_key(key)) <= 60
