"""Issue 15, "Faults", the services under TokenHub: Redis stopped mid-run, PostgreSQL restarted or stalled
between a hold and its settlement, a Celery worker killed mid-task. Each test stops only servers it started
itself (tests/guarantees/services.py); the books are whole after each."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from billing.models import HoldStatus, RedemptionBatch, RedemptionCode, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from tests import servers
from tests.conftest import wait_for
from tests.guarantees.conftest import assert_books_whole
from tests.guarantees.services import books_in, own_postgres, own_redis
from tests.guarantees.test_faults import ANTHROPIC, OPENAI, call
from tests.servers import asgi_server

pytestmark = pytest.mark.services

QUICK = {"TOKENHUB_ROUTING_CHECK_SECONDS": "0", "TOKENHUB_SETTLEMENT_GATHER_MS": "0"}


class Stream(threading.Thread):
    """A streamed call running while the test breaks something; `outcome` once it is over."""

    def __init__(self, relay: str, key: str):
        super().__init__(daemon=True)
        self.relay, self.key, self.outcome = relay, key, None

    def run(self) -> None:
        self.outcome = call(self.relay, self.key, OPENAI, stream=True)


def open_holds(database_url: str) -> int:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as db:
        return db.execute("SELECT count(*) FROM billing_hold WHERE status = %s", [HoldStatus.OPEN]).fetchone()[0]


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_stopped_mid_run_calls_are_served_and_charged_once(cast):
    """Policy: serve. Redis holds no money (tokenhub/cache.py): while it is down every call is served from
    PostgreSQL, the stream in flight when it died settles, and each call is charged exactly once."""
    cast.channel("drip-150")  # streams take 3 s; plain answers are immediate
    from channels_app.models import Channel

    Channel.objects.update(concurrency_limit=10, rpm_limit=1000)  # the limits' counters live in Redis too
    limits = {"TOKENHUB_KEY_RPM": "1000", "TOKENHUB_KEY_TPM": "10000000"}
    with own_redis() as redis, asgi_server(REDIS_URL=redis.url, **QUICK, **limits) as relay:
        outcomes = [call(relay, cast.key, fmt, stream=False) for fmt in (OPENAI, ANTHROPIC)]
        in_flight = Stream(relay, cast.key)
        in_flight.start()
        wait_for(lambda: UsageRecord.objects.count() == 2 and open_holds(servers.test_database_url()) == 1)
        redis.stop()
        outcomes += [call(relay, cast.key, fmt, stream=False) for fmt in (OPENAI, ANTHROPIC)]
        outcomes.append(call(relay, cast.key, ANTHROPIC, stream=True))
        in_flight.join(timeout=20)
        redis.start()  # empty: whatever it held is gone, as after a real crash
        time.sleep(1.2)  # tokenhub.cache.DOWN_SECONDS: the server tries Redis again
        outcomes += [call(relay, cast.key, fmt, stream=True) for fmt in (OPENAI, ANTHROPIC)]
    assert [*outcomes, in_flight.outcome] == ["answered"] * 8
    assert_books_whole(cast.alice)
    assert list(UsageRecord.objects.values_list("status", flat=True)) == [UsageStatus.OK] * 8  # once each


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["restarted", "stalled"])
def test_postgres_restarted_or_stalled_between_hold_and_settle_the_settlement_lands(cast, fault):
    cast.channel("drip-200")  # a 4 s stream: the database goes away and comes back within it
    with own_postgres() as cluster:
        cluster.copy_test_database()
        with asgi_server(DATABASE_URL=cluster.url, DB_POOL_MAX_SIZE="2", **QUICK) as relay:
            stream = Stream(relay, cast.key)
            stream.start()
            wait_for(lambda: open_holds(cluster.url) == 1)
            if fault == "restarted":
                cluster.restart()  # the batched writer's connection and the pool's are all broken
            else:
                with cluster.stalled():
                    time.sleep(2)
            stream.join(timeout=30)
            assert stream.outcome == "answered"
            # A call after the fault: the worker's connections are whole again.
            assert call(relay, cast.key, OPENAI, stream=False) == "answered"
            wait_for(lambda: open_holds(cluster.url) == 0)
        books = books_in(cluster.url)
    assert books["problems"] == []
    assert [(status, float(cost) > 0) for status, cost, _error in books["records"]] == [("ok", True)] * 2


# --- Celery --------------------------------------------------------------------------------------


def _inside_the_task(batch_id: int) -> bool:
    """The worker has locked the batch and is making its codes (counted, being generated or inserted)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL "
        "AND query ILIKE '%billing_redemptioncode%'"
    )
    with psycopg.connect(servers.test_database_url().replace("postgres://", "postgresql://")) as db:
        return db.execute(query).fetchone()[0] > 0


def test_a_celery_worker_killed_mid_task_has_the_task_done_exactly_once(transactional_db):
    from billing import codes
    from billing.tasks import generate_redemption_codes
    from tests.servers import celery_worker

    batch = codes.create_batch(label="killed", amount="1", count=40_000, expires_at=None, created_by="test")
    # A dead worker's unacknowledged task goes back to the queue once older than the visibility timeout,
    # when a worker starts (and every 100 s after).
    env = {"CELERY_VISIBILITY_TIMEOUT": "1"}
    with celery_worker(**env) as worker:
        generate_redemption_codes.delay(batch.pk)
        wait_for(lambda: _inside_the_task(batch.pk), timeout=20, interval=0.01)
        worker.kill()  # SIGKILL mid-transaction: its codes are rolled back
        worker.wait()
    assert RedemptionCode.objects.filter(batch=batch).count() == 0
    time.sleep(1.5)  # past the visibility timeout
    with celery_worker(**env):
        wait_for(lambda: RedemptionCode.objects.filter(batch=batch).count() == 40_000, timeout=40)
        generate_redemption_codes.delay(batch.pk)  # delivered twice: the second run adds none
        time.sleep(1)
    assert RedemptionCode.objects.filter(batch=batch).count() == batch.count == 40_000
    assert RedemptionBatch.objects.count() == 1 and reconcile().problems == []
