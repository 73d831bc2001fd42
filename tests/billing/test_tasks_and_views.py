"""Check-in, stale holds and code batches through Celery (a real worker on Redis; eager on SQLite),
and the balance page's forms."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import codes, ledger
from billing.models import CheckIn, Hold, HoldStatus, RedemptionBatch, UsageRecord, UsageStatus
from billing.tasks import reconcile_ledger, release_stale_holds
from tests.billing.conftest import fund
from tests.conftest import sign_in, wait_for


def test_checkin_button_books_one_reward_through_celery(celery_worker, alice, settings):
    client = Client()
    client.force_login(alice)
    first = client.post(reverse("billing:checkin"), headers={"HX-Request": "true"})
    assert first.status_code == 200 and "being added" in first.content.decode()
    wait_for(lambda: CheckIn.objects.filter(user=alice).exists())
    again = client.post(reverse("billing:checkin"), headers={"HX-Request": "true"})
    assert "Come back tomorrow" in again.content.decode()
    # A duplicate task (a double click that raced the first) books nothing more.
    from billing.tasks import grant_checkin

    grant_checkin.delay(alice.pk, timezone.now().date().isoformat())
    wait_for(lambda: ledger.balance_of(alice.pk) == settings.TOKENHUB_CHECKIN_REWARD_USD)
    assert CheckIn.objects.filter(user=alice).count() == 1


def test_stale_hold_task_releases_through_celery(celery_worker, alice, settings):
    fund(alice, "1")
    ledger.hold(user_id=alice.pk, amount=Decimal("0.7"), request_id="crashed")
    Hold.objects.filter(request_id="crashed").update(created_at=timezone.now() - timedelta(hours=1))
    release_stale_holds.delay()
    wait_for(lambda: Hold.objects.get(request_id="crashed").status == HoldStatus.RELEASED)
    assert UsageRecord.objects.get(request_id="crashed").status == UsageStatus.EXPIRED
    assert ledger.balance_of(alice.pk) == Decimal("1")


def test_admin_generates_a_code_batch_through_celery(celery_worker, admin_user):
    client = Client()
    sign_in(client, admin_user)
    response = client.post(
        reverse("admin:billing_redemptionbatch_add"),
        {"label": "spring", "amount": "3", "count": "25", "expires_at": ""},
    )
    assert response.status_code == 302
    batch = RedemptionBatch.objects.get(label="spring")
    assert batch.created_by == "admin:root"
    wait_for(lambda: batch.codes.count() == 25)
    export = client.post(
        reverse("admin:billing_redemptionbatch_changelist"),
        {"action": "export_csv", "_selected_action": [batch.pk]},
    )
    assert export["Content-Type"] == "text/csv" and export.content.decode().count("\n") == 26


@pytest.mark.django_db
def test_reconcile_task_reports_the_state():
    assert reconcile_ledger.apply().get() is True


@pytest.mark.django_db
def test_redeem_form_shows_each_refusal_in_place(alice, bob):
    batch = codes.create_batch(label="b", amount=Decimal("2"), count=1, expires_at=None, created_by="t")
    codes.fill_batch(batch.pk)
    code = batch.codes.get().code
    expired = codes.create_batch(
        label="x", amount=Decimal("2"), count=1, expires_at=timezone.now() - timedelta(days=1), created_by="t"
    )
    codes.fill_batch(expired.pk)
    client = Client()
    client.force_login(alice)
    unknown = client.post(reverse("billing:redeem"), {"code": "ZZZZZ"})
    assert unknown.status_code == 400 and "does not exist" in unknown.content.decode()
    too_late = client.post(reverse("billing:redeem"), {"code": expired.codes.get().code})
    assert "expired" in too_late.content.decode()
    ok = client.post(reverse("billing:redeem"), {"code": code}, follow=True)
    assert "$2" in ok.content.decode() and ledger.balance_of(alice.pk) == Decimal("2")
    bob_client = Client()
    sign_in(bob_client, bob)
    used = bob_client.post(reverse("billing:redeem"), {"code": code})
    assert "already been used" in used.content.decode()
    assert ledger.balance_of(bob.pk) == 0


@pytest.mark.django_db
def test_balance_page_needs_login_and_checkin_needs_post(alice):
    assert Client().get(reverse("billing:wallet")).status_code == 302
    client = Client()
    client.force_login(alice)
    assert client.get(reverse("billing:checkin")).status_code == 405
    fund(alice, "1.23")
    assert "$1.2300" in client.get(reverse("billing:wallet")).content.decode()


@pytest.mark.django_db
def test_admin_grant_action_records_the_admin(admin_user, alice):
    client = Client()
    sign_in(client, admin_user)
    url = reverse("admin:accounts_user_changelist")
    form = client.post(url, {"action": "grant_credit", "_selected_action": [alice.pk]})
    assert form.status_code == 200 and "Grant or debit credit" in form.content.decode()
    client.post(
        url,
        {"action": "grant_credit", "_selected_action": [alice.pk], "apply": "1", "amount": "4.5", "memo": "goodwill"},
    )
    assert ledger.balance_of(alice.pk) == Decimal("4.5")
    from billing.models import Transaction

    assert Transaction.objects.get(memo="goodwill").actor == "admin:root"
    assert "4.5" in client.get(url).content.decode()
