"""Redemption codes: random, unguessable, single-use; generated in batches."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from accounts import audit

from .ledger import money
from .models import RedemptionBatch, RedemptionCode

# No 0/O or 1/I/L: codes are typed by hand.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_LENGTH = 4, 5  # 20 characters from 31: ~99 bits


def new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(chars[i : i + GROUP_LENGTH] for i in range(0, len(chars), GROUP_LENGTH))


def create_batch(*, label: str, amount: Decimal, count: int, expires_at: datetime | None, created_by: str):
    if count < 1 or count > 100_000:
        raise ValueError("a batch holds between 1 and 100000 codes")
    amount = money(amount)
    if amount <= 0:
        raise ValueError("a code must be worth more than $0")
    with transaction.atomic():
        batch = RedemptionBatch.objects.create(
            label=label, amount=amount, count=count, expires_at=expires_at, created_by=created_by
        )
        after = {"label": label, "amount": amount, "count": count, "total": amount * count, "expires_at": expires_at}
        audit.record("codes.batch", owner_id=None, target=f"batch:{batch.pk}", after=after)
    return batch


def fill_batch(batch_id: int) -> int:
    """Generate the batch's missing codes; running it again adds none. Returns how many it made."""
    with transaction.atomic():
        batch = RedemptionBatch.objects.select_for_update().get(pk=batch_id)
        missing = batch.count - batch.codes.count()
        RedemptionCode.objects.bulk_create(RedemptionCode(batch=batch, code=new_code()) for _ in range(missing))
    return max(missing, 0)


def batch_csv(batch: RedemptionBatch) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "amount_usd", "batch", "expires_at", "redeemed_at"])
    expires = batch.expires_at.isoformat() if batch.expires_at else ""
    for code in batch.codes.order_by("id"):
        redeemed = code.redeemed_at.isoformat() if code.redeemed_at else ""
        writer.writerow([code.code, f"{batch.amount:.8f}", batch.label, expires, redeemed])
    return out.getvalue()
