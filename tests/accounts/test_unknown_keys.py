"""Made-up keys: one database query per distinct key within the marker's window, on /api and /v1,
and a key created with a remembered hash is found at once."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import Client

from accounts import keys
from accounts.models import ApiKey

BAD = ["sk-hub-" + letter * 48 for letter in "xyz"]


@pytest.fixture
def key_queries():
    """Look-ups of the key table on every connection, the relay's worker threads included."""
    seen: list[str] = []

    def count(execute, sql, params, many, context):
        if "accounts_apikey" in sql and sql.lstrip().upper().startswith("SELECT"):
            seen.append(sql)
        return execute(sql, params, many, context)

    def attach(sender=None, connection=None, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(attach)
    for connection in connections.all():
        attach(connection=connection)
    yield seen
    connection_created.disconnect(attach)


@pytest.mark.django_db
def test_api_bad_keys_cost_one_query_each_within_the_window(alice, key_queries):
    for _ in range(5):
        for raw in BAD:
            assert Client(headers={"authorization": f"Bearer {raw}"}).get("/api/me").status_code == 401
    assert len(key_queries) == len(BAD)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("local_seconds", [2.0, 0.0])  # with and without this process's copy
def test_relay_bad_keys_cost_one_query_each_within_the_window(alice, key_queries, settings, local_seconds):
    settings.TOKENHUB_KEY_LOCAL_SECONDS = local_seconds

    async def hammer():
        for _ in range(5):
            for raw in BAD:
                assert await keys.alookup(raw) is None

    asyncio.run(hammer())
    assert len(key_queries) == len(BAD)


@pytest.mark.django_db(transaction=True)
def test_a_key_created_with_a_remembered_hash_is_found_at_once(alice):
    raw = BAD[0]
    assert keys.lookup(raw) is None and asyncio.run(keys.alookup(raw)) is None  # both markers set
    ApiKey.objects.create(user=alice, name="unlikely", prefix=raw[:13], key_hash=keys.hash_key(raw))
    assert keys.lookup(raw).user_id == alice.pk
    assert asyncio.run(keys.alookup(raw)).user_id == alice.pk
