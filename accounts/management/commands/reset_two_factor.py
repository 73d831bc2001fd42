from __future__ import annotations

from django.core.management.base import CommandError

from accounts import audit
from accounts.models import User
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Turn off a user's two-factor sign-in (a lost phone and lost recovery codes), after checking who "
        "they are by other means. They sign in with their password and set it up again."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f'No user "{username}".')
        if not audit.two_factor_reset(user):
            raise CommandError(f'"{username}" has no two-factor sign-in to reset.')
        self.stdout.write(
            f'Two-factor sign-in of "{username}" is off; they can set it up again on their settings page.'
        )
