from __future__ import annotations

import getpass
import hashlib
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from billing import codes
from billing.models import RedemptionBatch
from tokenhub.lib.commands import OperatorCommand
from tokenhub.lib.locks import single_run


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
        if not batch:
            label = f"cli {datetime.now(UTC):%Y-%m-%d %H:%M}"
            created = self._create(label, value, count, expires_at)
        else:
            # Two runs with one label at once would make two batches: one at a time per label.
            with single_run(f"redemption-batch:{hashlib.sha256(batch.encode()).hexdigest()}", timeout=600) as alone:
                if not alone:
                    raise CommandError(f"another make_redemption_codes for batch {batch!r} is running; wait for it")
                created = self._existing(batch, value, count, expires_at) or self._create(
                    batch, value, count, expires_at
                )
        codes.fill_batch(created.pk)
        self.stdout.write(codes.batch_csv(created), ending="")

    def _existing(self, label: str, value: Decimal, count: int, expires_at) -> RedemptionBatch | None:
        """The batch an earlier run with this label made (a run again prints it, adding nothing)."""
        existing = RedemptionBatch.objects.filter(label=label).order_by("created_at").first()
        if existing is None:
            return None
        if not existing.created_by.startswith("cli:"):
            raise CommandError(
                f"a batch labelled {label!r} was made in the admin ({existing.created_by}): choose another label"
            )
        if (existing.count, existing.amount, existing.expires_at) != (count, codes.money(value), expires_at):
            raise CommandError(f"a batch labelled {label!r} already exists ({existing}): choose another --batch label")
        self.stderr.write(f"batch {label!r} exists (made by {existing.created_by}): printing its codes, none added")
        return existing

    def _create(self, label: str, value: Decimal, count: int, expires_at) -> RedemptionBatch:
        try:
            return codes.create_batch(
                label=label, amount=value, count=count, expires_at=expires_at, created_by=f"cli:{getpass.getuser()}"
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
