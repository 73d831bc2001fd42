from __future__ import annotations

from django.core.management.base import CommandError

from accounts import users
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Deactivate a user (or --reactivate): their log-in, sessions and sk-hub keys stop working at once."
    shares_state = True

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reactivate", action="store_true", help="Make the user active again.")

    def handle(self, *args, username, reactivate, **options):
        try:
            changed = users.set_active(username, active=reactivate)
        except users.UnknownUser as exc:
            raise CommandError(str(exc)) from None
        state = "active" if reactivate else "deactivated"
        self.stderr.write(f'User "{username}" {"is now" if changed else "was already"} {state}.')
