"""The round trips of one successful relayed call are counted, so they cannot creep back.

In-process (the ASGI app through httpx's ASGI transport) against the fake upstream, on
PostgreSQL + Redis; SQL is counted at Django's cursor for every thread and by the batched
ledger writer's own statement counter, Redis by the server's own command counter.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import httpx
import pytest
import redis
from asgiref.sync import async_to_sync
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.ledger import batched
from billing.models import TransactionKind, UsageRecord
from channels_app import routing
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel
from tests.relay.test_relay_calls import PROMPT

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class Counter:
    def __init__(self):
        self.statements, self.commits, self.lock = [], 0, threading.Lock()


@pytest.fixture
def sql_counter(monkeypatch):
    counter = Counter()
    original_execute, original_commit = CursorWrapper.execute, BaseDatabaseWrapper._commit

    def execute(self, sql, params=None):
        with counter.lock:
            counter.statements.append(sql)
        return original_execute(self, sql, params)

    def commit(self):
        with counter.lock:
            counter.commits += 1
        return original_commit(self)

    monkeypatch.setattr(CursorWrapper, "execute", execute)
    monkeypatch.setattr(BaseDatabaseWrapper, "_commit", commit)
    return counter


def redis_commands(client: redis.Redis) -> int:
    return client.info("stats")["total_commands_processed"]


def test_a_successful_call_costs_two_transactions_and_at_most_one_redis_round_trip(
    fake_upstream, sql_counter, settings
):
    settings.TOKENHUB_ROUTING_CHECK_SECONDS = 60  # production asks once a second, not per call
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="t", actor="t", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "k")
    add_channel(bob, fake_upstream)
    routing.invalidate()
    from tokenhub.asgi import application

    async def call():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": PROMPT},
                headers={"authorization": f"Bearer {raw}"},
            )
            assert response.status_code == 200, response.text
            from relay.settlement import _background

            await asyncio.gather(*_background)  # the settlement follows the answer
            await batched.close()  # this loop's ledger connections (async_to_sync makes a loop per call)
            return response

    async_to_sync(call)()  # warm: key cached, routing snapshot built, key touched
    r = redis.Redis.from_url(settings.REDIS_URL)
    sql_counter.statements.clear()
    sql_counter.commits = 0
    batched_before = batched.stats.statements
    before = redis_commands(r)
    async_to_sync(call)()
    after = redis_commands(r)
    redis_round_trips = after - before - 1  # minus the INFO that took `before`
    batched_statements = batched.stats.statements - batched_before
    django_statements, django_commits = list(sql_counter.statements), sql_counter.commits
    assert UsageRecord.objects.count() == 2
    print(
        f"\nDjango SQL statements {len(django_statements)}, commits {django_commits}; "
        f"batched ledger statements {batched_statements}; Redis {redis_round_trips}"
    )
    # The hold and the settlement: one autocommitted statement each, nothing through Django's connection.
    assert batched_statements == 2
    assert django_commits == 0
    assert django_statements == []
    assert redis_round_trips <= 1  # key identity and breaker states come from process memory when warm
