"""The guarantees suite's cast and servers: a caller with $10, a channel owner, and TokenHub on the
production stack (gunicorn + uvicorn) against the fake upstream, plus the books' invariants."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db.models import Sum

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Entry, Hold, HoldStatus, TransactionKind, UsageRecord
from billing.reconcile import reconcile
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import wait_for
from tests.relay.conftest import add_channel, relay_url, world  # noqa: F401  (the real server and its cast)
from tests.servers import asgi_server

pytestmark = pytest.mark.services

CREDIT = Decimal("10")
# An upstream silent for longer than this has "hung before the first byte" (the fault matrix waits it out).
READ_TIMEOUT = "1"


@pytest.fixture(scope="session")
def guarantees_relay(django_db_setup, django_db_blocker, fake_upstream):
    """TokenHub for the fault matrix: a short upstream read timeout, no per-key rate limit."""
    with asgi_server(
        DB_POOL_MAX_SIZE="4",
        TOKENHUB_ROUTING_CHECK_SECONDS="0",
        TOKENHUB_KEY_RPM="0",
        TOKENHUB_UPSTREAM_READ_TIMEOUT=READ_TIMEOUT,
        TOKENHUB_SETTLEMENT_GATHER_MS="0",  # settle at once: each case waits for its settlement
    ) as url:
        yield url


@dataclass
class Cast:
    alice: User  # the caller
    bob: User  # the channel owner
    key: str  # alice's sk-hub key
    upstream: str

    def channel(self, upstream_key: str, base_url: str | None = None, **extra):
        """alice's only route to gpt-4o-mini: an OpenAI-format channel whose upstream key picks the fault."""
        return add_channel(self.bob, base_url or self.upstream, models=("gpt-4o-mini",), keys_=(upstream_key,), **extra)


def seed_cast(upstream: str) -> Cast:
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=CREDIT, memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "guarantees")
    return Cast(alice, bob, raw, upstream)


@pytest.fixture
def cast(transactional_db, fake_upstream) -> Cast:
    yield seed_cast(fake_upstream)
    # Streams settle just after their last byte: let the server finish before the tables are flushed.
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=15)


def books_are_whole(caller: User) -> list[str]:
    """What is wrong with the books once every call has ended ([] when nothing is)."""
    problems = list(reconcile().problems)
    if open_holds := Hold.objects.filter(status=HoldStatus.OPEN).count():
        problems.append(f"{open_holds} hold(s) still open")
    total = Entry.objects.aggregate(total=Sum("amount"))["total"] or 0
    if total != 0:
        problems.append(f"the entries of all accounts sum to {total}, not 0")
    if (balance := ledger.balance_of(caller.pk)) < 0:
        problems.append(f"the caller's balance is negative: {balance}")
    held = dict(Hold.objects.values_list("request_id", "amount"))
    for record in UsageRecord.objects.all():
        if record.cost_usd > held.get(record.request_id, Decimal(0)):
            problems.append(f"{record.request_id} charged {record.cost_usd}, more than its hold")
    if len(held) != UsageRecord.objects.filter(request_id__in=held).count():
        problems.append("a hold ended without exactly one usage record")
    return problems


def assert_books_whole(caller: User, timeout: float = 15) -> None:
    """Every hold ends (well inside the sweep window), `reconcile` is clean, all accounts sum to zero,
    the caller's balance is not negative and no call was charged more than it held."""
    with contextlib.suppress(AssertionError):  # reported below, with everything else that is wrong
        wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=timeout)
    assert books_are_whole(caller) == []
