from __future__ import annotations

import secrets
import sys

from django.core.management.base import CommandError
from django.db import transaction

from accounts.models import User
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Create a user. The password comes from --password-stdin, or is generated and printed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--email-verified",
            action="store_true",
            help="The operator vouches for the address: no verification link is needed (check-ins, payouts).",
        )
        parser.add_argument("--staff", action="store_true", help="Staff and superuser (Django admin access).")
        parser.add_argument("--password-stdin", action="store_true", help="Read the password from stdin.")
        parser.add_argument(
            "--update", action="store_true", help="If the user exists, set its password instead of failing."
        )

    def handle(self, *args, username, email, email_verified, staff, password_stdin, update, **options):
        generated = not password_stdin
        password = secrets.token_urlsafe(12) if generated else sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("No password on stdin.")
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is not None and not update:
                raise CommandError(f'User "{username}" already exists (use --update to reset its password).')
            if user is None:
                user = User(username=username, email=email)
            user.email = email or user.email
            if email_verified and user.email:
                user.verified_email = user.email
            user.is_staff = user.is_superuser = staff or user.is_staff
            user.set_password(password)
            user.save()
        self.stderr.write(f'User "{username}" ready.')
        if user.is_staff:
            self.stderr.write("Staff turn on two-factor sign-in at their first visit to the admin (it asks them to).")
        if generated:
            self.stdout.write(password)
