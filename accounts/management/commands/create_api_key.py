from __future__ import annotations

from django.core.management.base import CommandError

from accounts import keys
from accounts.models import KeyScope, User
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Create an sk-hub API key for a user and print it, alone, on stdout (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default")
        parser.add_argument(
            "--scope", choices=KeyScope.values, default=KeyScope.RELAY, help="relay (default) or manage."
        )

    def handle(self, *args, username, name, scope, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f'No user "{username}".')
        _key, raw_key = keys.create_key(user, name, scope=scope)
        self.stdout.write(raw_key)
