from __future__ import annotations

from channels_app import checks
from channels_app.models import Channel
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Query upstream balances where providers have an API; pause channels below their threshold."
    shares_state = True

    def handle(self, *args, **options):
        for channel in Channel.objects.all():
            result = checks.probe_balance(channel)
            channel.refresh_from_db()
            shown = f"${result.balance_usd}" if result.balance_usd is not None else channel.balance_status
            self.stdout.write(f"{channel.public_id} {channel.name}: {shown} [{channel.status}]")
