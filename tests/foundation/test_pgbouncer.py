"""TokenHub behind a real PgBouncer (Debian's 1.18) in transaction mode: the relay, its batched ledger
and the operators' commands, with fewer server connections than clients so that consecutive
transactions of one client land on different PostgreSQL sessions.

Debian's PgBouncer keeps no prepared statements in transaction mode, and the ledger's batcher prepares
its two statements on a long-lived connection: DB_TRANSACTION_POOLING=1 runs them unprepared, or
TOKENHUB_LEDGER_DATABASE_URL gives the batcher a direct connection. Both are proven here.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import openai
import psycopg
import pytest
from django.db import connection

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.catalog import import_catalog
from devtools.pgbouncer import pgbouncer
from tests import servers
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.servers import LOG_DIR, ROOT, asgi_server, server_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CALLS, CALLERS = 80, 16
PROMPT = [{"role": "user", "content": "hello"}]


@pytest.fixture
def market(transactional_db, fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=Decimal("5"), memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "pooled")
    add_channel(bob, fake_upstream, models=("gpt-4o-mini",), name="bob-openai")
    add_channel(bob, fake_upstream, provider="anthropic", models=("claude-haiku-4-5",), name="bob-anthropic")
    routing.invalidate()
    return alice, raw


@pytest.fixture
def bouncer():
    # 3 server connections for 2 workers' pools, batchers and the test's own: clients take turns.
    with pgbouncer(pool_size=3) as (port, log):
        yield port, log


def pooled_url(port: int) -> str:
    return f"postgres://postgres@127.0.0.1:{port}/{connection.settings_dict['NAME']}"


def one_call(base: str, raw: str, index: int) -> int:
    stream = index % 2 == 1
    if index % 4 < 2:
        with openai.OpenAI(base_url=f"{base}/v1", api_key=raw, max_retries=0) as client:
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=stream)
            return len(list(answer)) if stream else answer.usage.completion_tokens
    with anthropic.Anthropic(base_url=base, api_key=raw, max_retries=0) as client:
        if stream:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=PROMPT) as events:
                return events.get_final_message().usage.output_tokens
        return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=PROMPT).usage.output_tokens


def transactions_through(port: int) -> int:
    """What PgBouncer's admin console counts for the test database: proof the traffic went through it."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/pgbouncer", autocommit=True) as admin:
        admin.prepare_threshold = None
        cursor = admin.execute("SHOW STATS")
        columns = [c.name for c in cursor.description]
        for row in cursor.fetchall():
            stats = dict(zip(columns, row, strict=True))
            if stats["database"] == connection.settings_dict["NAME"]:
                return int(stats["total_xact_count"])
    return 0


@pytest.mark.parametrize(
    "ledger_env",
    [
        pytest.param({}, id="batcher-unprepared-through-pgbouncer"),
        pytest.param({"TOKENHUB_LEDGER_DATABASE_URL": "direct"}, id="batcher-prepared-on-a-direct-connection"),
    ],
)
def test_calls_are_billed_exactly_through_pgbouncer_in_transaction_mode(market, bouncer, ledger_env):
    alice, raw = market
    port, bouncer_log = bouncer
    env = {"DATABASE_URL": pooled_url(port), "DB_TRANSACTION_POOLING": "1", "DB_POOL_MAX_SIZE": "4"}
    if ledger_env:
        env["TOKENHUB_LEDGER_DATABASE_URL"] = servers.test_database_url()
    with asgi_server(workers=2, TOKENHUB_ROUTING_CHECK_SECONDS="0", TOKENHUB_KEY_RPM="0", **env) as base:
        with ThreadPoolExecutor(CALLERS) as pool:
            outputs = list(pool.map(lambda i: one_call(base, raw, i), range(CALLS)))
        assert all(outputs)
        wait_for(
            lambda: (
                UsageRecord.objects.filter(status="ok").count() == CALLS
                and not Hold.objects.filter(status=HoldStatus.OPEN).exists()
            ),
            timeout=30,
        )
        server_log = (LOG_DIR / f"gunicorn-{base.rsplit(':', 1)[1]}.log").read_text()

    report = reconcile()
    assert report.ok, report.problems
    spent = sum(r.cost_usd for r in UsageRecord.objects.all())
    assert spent > 0 and ledger.balance_of(alice.pk) == Decimal("5") - spent
    # No batch fell back to the per-call path: the batched statements themselves worked here.
    assert "refused" not in server_log and "prepared statement" not in server_log, server_log[-2000:]
    assert "prepared statement" not in bouncer_log.read_text()
    # Through PgBouncer: the relay's reads (keys, routes) and, unless direct, the ledger's statements.
    assert transactions_through(port) >= (1 if ledger_env else CALLS)


def test_operator_commands_run_through_pgbouncer(market, bouncer):
    port, _log = bouncer
    env = server_env(DATABASE_URL=pooled_url(port), DB_TRANSACTION_POOLING="1")
    for command in (
        ["rotate_encryption_key"],
        ["reconcile"],
        ["export_usage", "--from", "2026-01-01", "--to", "2099-01-01"],
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, (command, done.stderr.decode()[-1500:])


def test_many_readers_walk_querysets_through_pgbouncer_without_server_side_cursors(market, bouncer):
    """Django's .iterator() declares a WITH HOLD cursor unless DISABLE_SERVER_SIDE_CURSORS: through a
    transaction pooler its next fetch can land on a session without it ("cursor … does not exist")."""
    port, _log = bouncer
    script = (
        "import django, threading; django.setup()\n"
        "from django.db import connection\n"
        "from channels_app.models import CatalogModel\n"
        "errors = []\n"
        "def walk():\n"
        "    try:\n"
        "        for _ in range(5):\n"
        "            assert sum(1 for _ in CatalogModel.objects.all().iterator(chunk_size=1)) > 1\n"
        "    except Exception as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "    finally:\n"
        "        connection.close()\n"
        "threads = [threading.Thread(target=walk) for _ in range(6)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print('errors', errors)\n"
    )
    for pooling, clean in (("1", True), ("0", False)):
        env = server_env(DATABASE_URL=pooled_url(port), DB_TRANSACTION_POOLING=pooling)
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-1500:]
        # With the setting, no reader fails; without it some do: the test can tell the two apart.
        assert (b"errors []" in done.stdout) is clean, (pooling, done.stdout.decode())
