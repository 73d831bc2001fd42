from __future__ import annotations

from django.conf import settings

from billing import ledger
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Release holds older than TOKENHUB_HOLD_TIMEOUT_SECONDS (left by a crashed worker)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=None, help="Seconds (default: the setting).")

    def handle(self, *args, older_than=None, **options):
        seconds = older_than if older_than is not None else settings.TOKENHUB_HOLD_TIMEOUT_SECONDS
        released = ledger.release_stale_holds(older_than_seconds=seconds)
        self.stdout.write(f"released {released} hold(s)")
