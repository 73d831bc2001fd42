from __future__ import annotations

from django.core.management.base import CommandError

from channels_app.crypto import new_key_value
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Print a new value for TOKENHUB_ENCRYPTION_KEYS (id:base64key), alone on stdout."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--key-id", help="Key id (default: k + the UTC time).")

    def handle(self, *args, key_id=None, **options):
        try:
            self.stdout.write(new_key_value(key_id))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
