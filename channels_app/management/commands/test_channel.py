from __future__ import annotations

from django.core.management.base import CommandError

from channels_app import checks
from channels_app.models import Channel
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Make one minimal real call per channel (through the relay's client code) and record the result."
    shares_state = True

    def add_arguments(self, parser):
        parser.add_argument("channel_id", nargs="?", help="A channel's public id.")
        parser.add_argument("--all", action="store_true")

    def handle(self, *args, channel_id=None, all=False, **options):
        if bool(channel_id) == all:
            raise CommandError("Give one channel id or --all.")
        selected = Channel.objects.all() if all else Channel.objects.filter(public_id=channel_id)
        if not selected.exists():
            raise CommandError(f"No channel {channel_id}.")
        failed = 0
        for channel in selected:
            result = checks.test_channel(channel)
            channel.refresh_from_db()
            failed += not result.ok
            status = "ok  " if result.ok else "FAIL"
            self.stdout.write(f"{status} {channel.public_id} {channel.name}: {result.message} [{channel.status}]")
        if failed:
            raise CommandError(f"{failed} channel(s) failed")
