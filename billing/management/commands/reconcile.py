from __future__ import annotations

from django.core.management.base import CommandError

from billing.reconcile import reconcile
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Check the ledger: balanced transactions, cached balances, no negative balances, no stale holds."

    def handle(self, *args, **options):
        report = reconcile()
        for kind, total in report.summary.items():
            self.stdout.write(f"{kind:>12}: {total}")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(f"PROBLEM: {problem}")
            raise CommandError(f"ledger reconciliation found {len(report.problems)} problem(s)")
        self.stdout.write("ledger OK")
