from __future__ import annotations

from django.core.management.base import CommandError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

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
        with transaction.atomic():
            removed = (
                TOTPDevice.objects.filter(user=user).delete()[0] + StaticDevice.objects.filter(user=user).delete()[0]
            )
            if not removed:
                raise CommandError(f'"{username}" has no two-factor sign-in to reset.')
            audit.record("security.2fa_reset", owner_id=user.pk, target=f"user:{user.pk}")
        self.stdout.write(
            f'Two-factor sign-in of "{username}" is off; they can set it up again on their settings page.'
        )
