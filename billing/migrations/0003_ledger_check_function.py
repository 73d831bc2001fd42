"""`tokenhub_ledger_check(ok, what)`: raises inside a statement, so a batched ledger write that would
leave a transaction short of a leg aborts as a whole (see billing/batched.py). PostgreSQL only."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION tokenhub_ledger_check(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ledger check failed: %', what USING ERRCODE = 'check_violation';
    END IF;
    RETURN true;
END
$$;
"""
DROP = "DROP FUNCTION IF EXISTS tokenhub_ledger_check(boolean, text);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_hold_prices")]

    operations = [migrations.RunPython(create, drop)]
