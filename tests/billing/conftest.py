from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import connection

from billing import ledger
from billing.models import TransactionKind
from billing.reconcile import reconcile


def fund(user, amount: str) -> None:
    ledger.grant(user_id=user.pk, amount=Decimal(amount), memo="test funding", actor="test", kind=TransactionKind.GRANT)


@contextmanager
def guards_off():
    """Tamper as the tables' owner could: the ledger's triggers (billing/migrations/0007) and the
    cached-balance CHECKs off, so that a test shows what `reconcile` finds behind the database's back.

    Only inside a test's transaction (the `db` fixture): on PostgreSQL the changes are DDL that its
    rollback undoes too.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ALTER TABLE waits for no pending trigger event: run the deferred foreign-key checks now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE billing_entry DISABLE TRIGGER USER")
            cursor.execute("ALTER TABLE billing_transaction DISABLE TRIGGER USER")
            cursor.execute("ALTER TABLE billing_account DROP CONSTRAINT IF EXISTS cached_balance_not_null")
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            yield
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("ALTER TABLE billing_entry ENABLE TRIGGER USER")
                cursor.execute("ALTER TABLE billing_transaction ENABLE TRIGGER USER")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            else:
                cursor.execute("PRAGMA ignore_check_constraints = OFF")


@pytest.fixture
def assert_ledger_whole():
    def check():
        report = reconcile()
        assert report.problems == []

    return check


# --- Top-ups: test keys and the fake providers (devtools/fake_payments) ------------------------------------
@pytest.fixture(scope="session")
def payment_keys():
    from devtools.fake_payments.signing import Keys
    from tests.guarantees import leaks

    keys = Keys.generate()
    for secret in (keys.stripe_secret_key, keys.stripe_webhook_secret, keys.wechat_apiv3_key):
        leaks.record(secret)  # the suite's scan fails if one reaches a log or the database
    return keys


@pytest.fixture(scope="session")
def payment_gateway(payment_keys):
    from tests.servers import fake_payments

    with fake_payments(payment_keys.to_json()) as url:
        yield url


@pytest.fixture
def payments(settings, payment_keys, payment_gateway):
    """Every provider configured against the fake; yields the keys (tests sign notifications with them)."""
    settings.TOKENHUB_PAYMENTS = payment_keys.tokenhub_settings(payment_gateway)
    settings.TOKENHUB_PUBLIC_URL = "http://testserver"
    return payment_keys
