"""Drop the `LIKE 'prefix%'` indexes PostgreSQL got for the ledger's unique text keys.

Django adds a varchar_pattern_ops index beside each unique CharField on PostgreSQL. Nothing queries
request ids or idempotency keys by prefix (the admin's search is a case-insensitive contains, which
cannot use them), and every relayed call inserts four such keys: a hold's and a settlement's
transaction, the hold and the usage record.
"""

from django.db import migrations

INDEXES = {
    "billing_hold_request_id_ee850e6f_like": ("billing_hold", "request_id"),
    "billing_transaction_idempotency_key_37751f97_like": ("billing_transaction", "idempotency_key"),
    "billing_usagerecord_request_id_21a19607_like": ("billing_usagerecord", "request_id"),
}


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, (table, column) in INDEXES.items():
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_fewer_indexes")]

    operations = [migrations.RunPython(drop, create)]
