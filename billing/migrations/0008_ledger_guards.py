"""The database keeps the ledger's two rules itself, whoever writes (PostgreSQL only; a no-op on SQLite).

1. Every transaction's entries sum to zero. A statement-level AFTER INSERT trigger on billing_entry
   reads the statement's new rows (a transition table) and raises if, for any transaction, they do
   not sum to zero: `GROUP BY transaction_id HAVING sum(amount) <> 0`.

   Why per statement and not a deferred constraint trigger at commit: every writer inserts all of a
   transaction's entries in one INSERT (`billing/ledger/posting.py`'s `post`, one multi-row INSERT,
   and billing/ledger/batch_statements.py, whose one INSERT carries the entries of up to 200 calls), so the end of that statement is as good a moment as the commit. Constraint triggers must
   be FOR EACH ROW: six entries a call would each run a query at commit, where this runs one small
   aggregate over the statement's own rows (a batch's included). A future writer that split one
   transaction's entries over two INSERTs is refused — the rule becomes "one INSERT per transaction".

   Why the new rows alone, without the transaction's earlier entries: rule 2 forbids changing or
   removing entries, so a transaction's total only ever changes by INSERTs, and each INSERT adds
   zero to every transaction it touches. (Rows from before this migration: `reconcile` checks all.)

2. The ledger is append-only: UPDATE and DELETE on billing_entry and billing_transaction raise (a
   BEFORE … FOR EACH STATEMENT trigger: nothing legitimate edits them, so nothing is slowed).
   Mistakes are fixed by compensating transactions. TRUNCATE — Django's flush, the test suite's
   teardown — fires no UPDATE or DELETE trigger and still works.

Both raise with a class-23 SQLSTATE, so Django raises IntegrityError.

Measured with bench/ledger_guards.py (PostgreSQL 15, 2 shared cores): one INSERT of a full batch's
entries (200 calls, 800 rows) took 17.8 ms without a trigger and 17.7 ms with this one (the same
within noise; reading the transactions' earlier entries too: +35 ms; a deferred row-level constraint
trigger: +12 ms). A server-side loop of one-call INSERTs: 30-38 µs each with or without it. 2,000
hold+settle pairs through billing.ledger: within the run-to-run noise (±30% on a shared machine).
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION tokenhub_entries_sum_to_zero() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
    total numeric;
BEGIN
    SELECT transaction_id, sum(amount) INTO unbalanced, total
    FROM new_entries GROUP BY transaction_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: the entries of transaction % sum to %, not 0', unbalanced, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tokenhub_entries_sum_to_zero AFTER INSERT ON billing_entry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tokenhub_entries_sum_to_zero();

CREATE FUNCTION tokenhub_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % on % refused: the ledger is append-only (post a compensating transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER tokenhub_ledger_append_only BEFORE UPDATE OR DELETE ON billing_entry
    FOR EACH STATEMENT EXECUTE FUNCTION tokenhub_ledger_append_only();
CREATE TRIGGER tokenhub_ledger_append_only BEFORE UPDATE OR DELETE ON billing_transaction
    FOR EACH STATEMENT EXECUTE FUNCTION tokenhub_ledger_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS tokenhub_ledger_append_only ON billing_transaction;
DROP TRIGGER IF EXISTS tokenhub_ledger_append_only ON billing_entry;
DROP FUNCTION IF EXISTS tokenhub_ledger_append_only();
DROP TRIGGER IF EXISTS tokenhub_entries_sum_to_zero ON billing_entry;
DROP FUNCTION IF EXISTS tokenhub_entries_sum_to_zero();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_cached_balance_not_null")]

    operations = [migrations.RunPython(create, drop)]
