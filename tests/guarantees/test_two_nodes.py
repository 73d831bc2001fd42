"""Two web nodes on one PostgreSQL and one Redis, as two machines would run them: separate gunicorn
masters with two workers each. Under concurrent load from one key with a tight balance, spread over
both, the ledger reconciles and never overdraws; a key revoked through one node and a channel paused
through one node are honoured by the other within the documented windows (docs/deploy.md):
TOKENHUB_KEY_LOCAL_SECONDS for keys, TOKENHUB_ROUTING_CHECK_SECONDS for routing."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.servers import asgi_server_process

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# About 30 calls' worth at their real cost, and far fewer holds at once: most of the load is refused.
BALANCE = Decimal("0.00040000")
CALLS, CALLERS = 120, 24
PROMPT = [{"role": "user", "content": "hello"}]
SLACK = 1.5  # seconds for a call's own round trip and the test's polling on a busy 2-core machine


@pytest.fixture
def market(transactional_db, fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=BALANCE, memo="tight", actor="test", kind=TransactionKind.GRANT)
    relay_key, raw = keys.create_key(alice, "shared")
    _manage, alice_manage = keys.create_key(alice, "ops", scope="manage")
    _bob_manage, bob_manage = keys.create_key(bob, "ops", scope="manage")
    channel = add_channel(bob, fake_upstream, models=("gpt-4o-mini",), name="bob-openai")
    routing.invalidate()
    return {
        "alice": alice,
        "raw": raw,
        "key": relay_key,
        "alice_manage": alice_manage,
        "bob_manage": bob_manage,
        "channel": channel,
    }


@pytest.fixture
def nodes():
    env = {"TOKENHUB_KEY_RPM": "0", "DB_POOL_MAX_SIZE": "4"}
    with asgi_server_process(workers=2, **env) as (a, _), asgi_server_process(workers=2, **env) as (b, _):
        yield a, b


def call(base: str, raw: str, stream: bool) -> str:
    with openai.OpenAI(base_url=f"{base}/v1", api_key=raw, max_retries=0) as client:
        try:
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=64, stream=stream)
            if stream:
                list(answer)
            return "ok"
        except openai.APIStatusError as exc:
            return f"{exc.status_code}:{exc.body.get('code') if isinstance(exc.body, dict) else ''}"


def test_one_tight_balance_spent_through_two_nodes_never_overdraws_and_reconciles(market, nodes):
    alice, raw = market["alice"], market["raw"]
    lowest = [BALANCE]
    done = threading.Event()

    def watch_balance():  # the spendable balance, read from the database all through the load
        try:
            while not done.is_set():
                lowest[0] = min(lowest[0], ledger.balance_of(alice.pk))
                time.sleep(0.01)
        finally:
            connection.close()  # this thread's own connection

    watcher = threading.Thread(target=watch_balance)
    watcher.start()
    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            outcomes = list(pool.map(lambda i: call(nodes[i % 2], raw, stream=i % 3 == 0), range(CALLS)))
    finally:
        done.set()
        watcher.join()
    ok = outcomes.count("ok")
    refused = [o for o in outcomes if o != "ok"]
    # Some calls went through both nodes, the rest were refused for the balance, and nothing else.
    assert ok >= 10 and refused, outcomes
    assert set(refused) == {"402:insufficient_quota"}, set(refused)
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=30)

    report = reconcile()
    assert report.ok, report.problems
    charged = sum((r.cost_usd for r in UsageRecord.objects.filter(user=alice)), Decimal(0))
    assert UsageRecord.objects.filter(user=alice, status="ok").count() == ok
    final = ledger.balance_of(alice.pk)
    assert final >= 0 and lowest[0] >= 0
    assert final == BALANCE - charged


def every_worker_serves(nodes, raw: str) -> None:
    """Calls on fresh connections to both nodes, so that every worker has the key and the route in memory."""
    assert {call(node, raw, stream=False) for node in nodes for _ in range(6)} == {"ok"}


class Load:
    """Calls to both nodes back to back from a few threads, all through a change: a worker that kept
    renewing its copy while busy would go on serving past the window."""

    def __init__(self, nodes, raw: str, threads: int = 4):
        self.nodes, self.raw, self.stop = nodes, raw, threading.Event()
        self.answers: list[tuple[float, str]] = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, index: int) -> None:
        while not self.stop.is_set():
            started = time.monotonic()  # a call is judged by when it was made
            self.answers.append((started, call(self.nodes[index % 2], self.raw, stream=False)))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def answers_after(nodes, raw: str, changed_at: float, window: float) -> set[str]:
    """What every worker of both nodes answers once the window after a change has passed."""
    time.sleep(max(0.0, changed_at + window - time.monotonic()))
    return {call(node, raw, stream=False) for node in nodes for _ in range(8)}


def test_a_key_revoked_through_one_node_stops_on_the_other_within_the_window(market, nodes):
    a, _b = nodes
    every_worker_serves(nodes, market["raw"])
    window = settings.TOKENHUB_KEY_LOCAL_SECONDS + SLACK
    with Load(nodes, market["raw"]) as load:
        time.sleep(0.5)
        revoked = httpx.post(
            f"{a}/api/keys/{market['key'].public_id}/revoke",
            headers={"Authorization": f"Bearer {market['alice_manage']}"},
            timeout=10,
        )
        changed_at = time.monotonic()
        assert revoked.status_code == 200, revoked.text
        time.sleep(window + 1)
    late = [answer for at, answer in load.answers if at > changed_at + window]
    assert late and set(late) == {"401:invalid_api_key"}, load.answers[-10:]
    assert "ok" in {answer for at, answer in load.answers if at < changed_at}  # the load was served before
    assert answers_after(nodes, market["raw"], changed_at, window) == {"401:invalid_api_key"}


def test_a_channel_paused_through_one_node_is_not_routed_by_the_other_within_the_window(market, nodes):
    a, b = nodes
    every_worker_serves(nodes, market["raw"])
    paused = httpx.post(
        f"{a}/api/channels/{market['channel'].public_id}/pause",
        headers={"Authorization": f"Bearer {market['bob_manage']}"},
        timeout=10,
    )
    changed_at = time.monotonic()
    assert paused.status_code == 200, paused.text
    window = settings.TOKENHUB_ROUTING_CHECK_SECONDS + SLACK
    answers = answers_after(nodes, market["raw"], changed_at, window)
    assert len(answers) == 1 and answers.pop().startswith("503:"), answers
    client = openai.OpenAI(base_url=f"{b}/v1", api_key=market["raw"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as refusal:
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=64)
    # The refusal explains itself: the one channel serving the model is paused by its owner.
    assert refusal.value.status_code == 503 and "disabled by owner" in refusal.value.message, refusal.value.message
