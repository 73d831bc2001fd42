from __future__ import annotations

import getpass
from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from accounts.models import User
from billing import ledger
from billing.pricing import usd
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Credit a user's balance (a negative AMOUNT debits it, never below zero). AMOUNT in USD."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("amount")
        parser.add_argument("--memo", required=True)

    def handle(self, *args, username, amount, memo, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f'No user "{username}".')
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise CommandError(f"AMOUNT must be a decimal number of USD, got {amount!r}") from exc
        try:
            ledger.grant(user_id=user.pk, amount=value, memo=memo, actor=f"cli:{getpass.getuser()}")
        except (ledger.LedgerError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{username}: balance {usd(ledger.balance_of(user.pk))}")
