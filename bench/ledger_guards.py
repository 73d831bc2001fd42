"""What the ledger's zero-sum trigger (billing/migrations/0008_ledger_guards.py) costs on PostgreSQL.

Two measurements, each with the trigger as migrated, with no trigger, and with the two designs the
migration weighed against it (a statement trigger that also reads the transactions' earlier
entries; a row-level constraint trigger deferred to commit):

- 2,000 hold+settle pairs through `billing.ledger`, one call after another (its one-statement paths);
- one INSERT of 200 calls' settlement entries (800 rows), the size of a full batch in billing/ledger/batcher.py,
  and of one call's (4 rows): the trigger's cost without the noise of whole calls.

Needs a migrated scratch database (it writes to it, and leaves the migrated triggers as it found them):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch .venv/bin/python -m bench.ledger_guards
"""

from __future__ import annotations

import os
import statistics
import time
from decimal import Decimal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from billing import ledger  # noqa: E402
from billing.models import Transaction, TransactionKind  # noqa: E402
from billing.pricing import Usage  # noqa: E402

PAIRS, USERS, BATCH, BATCHES, SINGLES = 2000, 50, 200, 30, 500
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

JOINED = """
CREATE FUNCTION bench_zero_sum_joined() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM billing_entry e
               WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
               GROUP BY e.transaction_id HAVING sum(e.amount) <> 0) THEN
        RAISE EXCEPTION 'unbalanced' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_zero_sum AFTER INSERT ON billing_entry REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION bench_zero_sum_joined();
"""
DEFERRED = """
CREATE FUNCTION bench_zero_sum_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT sum(amount) FROM billing_entry WHERE transaction_id = NEW.transaction_id) <> 0 THEN
        RAISE EXCEPTION 'unbalanced' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER bench_zero_sum AFTER INSERT ON billing_entry DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bench_zero_sum_row();
"""
DROP_BENCH = """
DROP TRIGGER IF EXISTS bench_zero_sum ON billing_entry;
DROP FUNCTION IF EXISTS bench_zero_sum_joined();
DROP FUNCTION IF EXISTS bench_zero_sum_row();
"""
VARIANTS = {
    "no trigger": None,
    "statement, new rows (migrated)": "migrated",
    "statement, joined with earlier entries": JOINED,
    "row-level, deferred to commit": DEFERRED,
}


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def use(variant: str | None) -> None:
    execute(DROP_BENCH)
    migrated = "ENABLE" if variant == "migrated" else "DISABLE"
    execute(f"ALTER TABLE billing_entry {migrated} TRIGGER tokenhub_entries_sum_to_zero")
    if variant not in (None, "migrated"):
        execute(variant)


def pairs(users: list[int], owner: int, run: str) -> float:
    """Seconds for PAIRS hold+settle pairs."""
    started = time.perf_counter()
    for i in range(PAIRS):
        request_id = f"bench-{run}-{i}"
        ledger.hold(user_id=users[i % len(users)], amount=Decimal("0.01"), request_id=request_id)
        ledger.settle(
            request_id=request_id, usage=Usage(), cost=Decimal("0.004"), owner_id=owner, owner_cut=Decimal("0.2")
        )
    return time.perf_counter() - started


def batch_insert(users: list[int], owner: int, size: int, repeats: int) -> float:
    """Median seconds for one INSERT of `size` settlements' entries (4 legs each), rolled back."""
    user_accounts = [ledger.user_account(u).pk for u in users]
    hold_accounts = [ledger.accounts.account(*ledger.accounts.hold_spec(u)).pk for u in users]
    revenue, earnings = ledger.platform_account("revenue").pk, ledger.owner_account(owner).pk
    times = []
    for _ in range(repeats):
        with transaction.atomic():
            ids = [t.pk for t in Transaction.objects.bulk_create(Transaction(kind="settle") for _ in range(size))]
            legs = []
            for n, txn_id in enumerate(ids):
                u, h = user_accounts[n % len(users)], hold_accounts[n % len(users)]
                legs += [
                    (txn_id, u, "0.006"),
                    (txn_id, h, "-0.01"),
                    (txn_id, revenue, "0.0032"),
                    (txn_id, earnings, "0.0008"),
                ]
            values = ", ".join(["(%s, %s, %s)"] * len(legs))
            insert = f"INSERT INTO billing_entry (transaction_id, account_id, amount) VALUES {values}"  # noqa: S608
            params = [v for leg in legs for v in leg]
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(insert, params)
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred variant's checks, inside the timing
            times.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    return statistics.median(times)


def main() -> None:
    assert connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL scratch database"
    stamp = str(int(time.time()))
    users = [User.objects.create_user(f"bench-{stamp}-{n}").pk for n in range(USERS)]
    owner = User.objects.create_user(f"bench-{stamp}-owner").pk
    for user in users:
        ledger.grant(user_id=user, amount=Decimal("1000"), memo="bench", actor="bench", kind=TransactionKind.GRANT)
    pairs(users, owner, f"{stamp}-warm")  # creates every account; warms caches and plans
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    batches: dict[str, float] = {}
    singles: dict[str, float] = {}
    try:
        for round_ in range(ROUNDS):
            for name, variant in VARIANTS.items():  # interleaved, so drift hits every variant alike
                use(variant)
                results[name].append(pairs(users, owner, f"{stamp}-{round_}-{len(results[name])}-{name[:3]}"))
        for name, variant in VARIANTS.items():
            use(variant)
            batches[name] = batch_insert(users, owner, BATCH, BATCHES)
            singles[name] = batch_insert(users, owner, 1, SINGLES)
    finally:
        use("migrated")
    base = statistics.median(results["no trigger"])
    base_batch = batches["no trigger"]
    print(
        f"{PAIRS} hold+settle pairs through billing.ledger (median of {ROUNDS}); INSERTs of {BATCH} and 1 settlement(s)"
    )
    for name in VARIANTS:
        took = statistics.median(results[name])
        per_pair = took / PAIRS * 1e6
        extra = (took - base) / PAIRS * 1e6
        batch_ms = batches[name] * 1e3
        print(
            f"  {name:40} {took:6.2f} s  {per_pair:6.0f} µs/pair ({extra:+5.0f})   "
            f"batch {batch_ms:6.2f} ms ({(batches[name] - base_batch) * 1e3:+5.2f})   "
            f"one {singles[name] * 1e6:5.0f} µs ({(singles[name] - singles['no trigger']) * 1e6:+4.0f})"
        )


if __name__ == "__main__":
    main()
