from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import codes, ledger
from billing.models import Account, Entry, RedemptionCode
from billing.reconcile import reconcile
from tests.billing.conftest import fund, guards_off

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_codes_are_random_unguessable_and_single_use(alice, bob):
    batch = codes.create_batch(label="launch", amount=Decimal("2.50"), count=20, expires_at=None, created_by="t")
    assert codes.fill_batch(batch.pk) == 20
    assert codes.fill_batch(batch.pk) == 0  # re-running adds none
    values = list(batch.codes.values_list("code", flat=True))
    assert len(set(values)) == 20 and all(len(v.replace("-", "")) == 20 for v in values)
    ledger.redeem(user_id=alice.pk, code=values[0].lower().replace("-", " - "))  # forgiving of case and spaces
    assert ledger.balance_of(alice.pk) == Decimal("2.50")
    with pytest.raises(ledger.CodeRefused, match="already been used"):
        ledger.redeem(user_id=bob.pk, code=values[0])
    with pytest.raises(ledger.CodeRefused, match="does not exist"):
        ledger.redeem(user_id=bob.pk, code="NOPE-NOPE")


def test_expired_code_is_refused(alice):
    batch = codes.create_batch(
        label="old", amount=Decimal("1"), count=1, expires_at=timezone.now() - timedelta(days=1), created_by="t"
    )
    codes.fill_batch(batch.pk)
    with pytest.raises(ledger.CodeRefused, match="expired"):
        ledger.redeem(user_id=alice.pk, code=batch.codes.get().code)
    assert ledger.balance_of(alice.pk) == 0


def test_make_redemption_codes_writes_csv(alice):
    out, _err = run(
        "make_redemption_codes", "--count", "3", "--amount", "1.25", "--batch", "promo", "--expires", "2099-12-31"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3 and {r["amount_usd"] for r in rows} == {"1.25000000"}
    assert rows[0]["expires_at"].startswith("2099-12-31T23:59:59")
    ledger.redeem(user_id=alice.pk, code=rows[1]["code"])
    assert RedemptionCode.objects.filter(redeemed_by=alice).count() == 1


def test_make_redemption_codes_run_twice_with_one_label_makes_one_batch():
    args = ("make_redemption_codes", "--count", "3", "--amount", "2", "--batch", "launch", "--expires", "2099-12-31")
    first, _ = run(*args)
    again, err = run(*args)
    assert again == first and "exists" in err
    assert RedemptionCode.objects.filter(batch__label="launch").count() == 3
    with pytest.raises(CommandError, match="already exists"):
        run("make_redemption_codes", "--count", "5", "--amount", "2", "--batch", "launch")


def test_make_redemption_codes_refuses_bad_input():
    with pytest.raises(CommandError, match="decimal number"):
        run("make_redemption_codes", "--count", "3", "--amount", "lots")
    with pytest.raises(CommandError, match="more than \\$0"):
        run("make_redemption_codes", "--count", "3", "--amount", "0")


def test_grant_command(alice, monkeypatch):
    out, _ = run("grant", "alice", "3.5", "--memo", "support credit")
    assert "balance $3.5" in out
    with pytest.raises(CommandError, match="insufficient balance"):
        run("grant", "alice", "-10", "--memo", "oops")
    assert ledger.balance_of(alice.pk) == Decimal("3.5")


def test_reconcile_passes_on_a_whole_ledger_and_names_a_tampered_account(alice):
    fund(alice, "1")
    out, _ = run("reconcile")
    assert "ledger OK" in out
    Account.objects.filter(code=f"user:{alice.pk}").update(balance=Decimal("1.5"))
    with pytest.raises(CommandError, match="1 problem"):
        run("reconcile")
    report = reconcile()
    assert any(f"user:{alice.pk}" in p and "difference 0.5" in p for p in report.problems)


def test_reconcile_finds_an_unbalanced_transaction(alice):
    fund(alice, "1")
    entry = Entry.objects.filter(account__code=f"user:{alice.pk}").first()
    with guards_off():  # PostgreSQL itself refuses this (tests/billing/test_ledger_guards.py)
        Entry.objects.create(transaction=entry.transaction, account=entry.account, amount=Decimal("0.01"))
    problems = reconcile().problems
    assert any(f"transaction #{entry.transaction_id} entries sum to 0.01" in p for p in problems)


def test_reconcile_reports_a_stale_hold(alice, settings):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.1"), request_id="stuck")
    settings.TOKENHUB_HOLD_TIMEOUT_SECONDS = 0
    assert any("older than 0s" in p for p in reconcile().problems)
