from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import User
from channels_app import providers
from channels_app.channels import ChannelDraft, create_channel, parse_upstream_keys
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Add a channel. Upstream key(s) come from stdin, one per line; prints the channel's public id."
    shares_state = True

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="Username of the channel owner.")
        parser.add_argument("--provider", required=True, choices=providers.names())
        parser.add_argument("--base-url", default="", help="Default: the provider's public API.")
        parser.add_argument("--models", required=True, help="Comma-separated model names.")
        parser.add_argument("--cut", default="0", help="The owner's cut in percent, 0-50 (20 = 20 %%).")
        parser.add_argument("--priority", type=int, default=0, help="-100 to 100; higher is tried first.")
        parser.add_argument("--weight", type=int, default=1, help="1 to 100: the share within a priority.")
        parser.add_argument("--name", default="")
        parser.add_argument("--map", action="append", default=[], help="caller=upstream model name mapping.")

    def handle(self, *args, owner, provider, base_url, models, cut, priority, weight, name, map, **options):
        user = User.objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f'No user "{owner}".')
        keys = [] if sys.stdin.isatty() else parse_upstream_keys(sys.stdin.read())
        if not keys:
            raise CommandError("No upstream key on stdin: pipe the key(s) in, one per line.")
        try:
            owner_cut = Decimal(cut) / 100
        except InvalidOperation as exc:
            raise CommandError(f"--cut must be a percentage between 0 and 50, got {cut!r}") from exc
        mapping = dict(item.split("=", 1) for item in map if "=" in item)
        draft = ChannelDraft(
            owner_id=user.pk,
            provider=provider,
            base_url=base_url,
            model_names=models.split(","),
            upstream_keys=keys,
            name=name,
            owner_cut=owner_cut,
            priority=priority,
            weight=weight,
            model_mapping=mapping,
        )
        try:
            channel, warnings = create_channel(draft)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from exc
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(channel.public_id)
