from __future__ import annotations

import getpass
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from billing import codes
from billing.models import RedemptionBatch
from tokenhub.lib.commands import OperatorCommand


def parse_expiry(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--expires must be a date (YYYY-MM-DD) or ISO date-time, got {text!r}") from exc
    if len(text) == 10:  # a bare date: valid through the end of that UTC day
        parsed = datetime.combine(parsed.date(), time.max)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(OperatorCommand):
    help = (
        "Generate a batch of single-use redemption codes and write them as CSV to stdout. Run again with the "
        "same --batch label, count and amount, it completes and prints that batch instead of making another."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--amount", required=True, help="USD per code, e.g. 5 or 2.50")
        parser.add_argument("--batch", default="", help="A label for the batch.")
        parser.add_argument("--expires", help="Last valid day (YYYY-MM-DD, UTC) or an ISO date-time.")

    def handle(self, *args, count, amount, batch, expires, **options):
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise CommandError(f"--amount must be a decimal number of USD, got {amount!r}") from exc
        expires_at = parse_expiry(expires) if expires else None
        existing = RedemptionBatch.objects.filter(label=batch).first() if batch else None
        if existing is not None:
            if (existing.count, existing.amount, existing.expires_at) != (count, codes.money(value), expires_at):
                raise CommandError(
                    f"a batch labelled {batch!r} already exists ({existing}): choose another --batch label"
                )
            self.stderr.write(f"batch {batch!r} exists: printing its codes (none added twice)")
            created = existing
        else:
            label = batch or f"cli {datetime.now(UTC):%Y-%m-%d %H:%M}"
            try:
                created = codes.create_batch(
                    label=label, amount=value, count=count, expires_at=expires_at, created_by=f"cli:{getpass.getuser()}"
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        codes.fill_batch(created.pk)
        self.stdout.write(codes.batch_csv(created), ending="")
