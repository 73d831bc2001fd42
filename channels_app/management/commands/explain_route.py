from __future__ import annotations

from django.core.management.base import CommandError

from channels_app import routing
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Show which channels would serve MODEL, in order, or the full (admin) reason why none can."

    def add_arguments(self, parser):
        parser.add_argument("model")

    def handle(self, *args, model, **options):
        try:
            plan = routing.plan(model)
        except routing.Refusal as refusal:
            raise CommandError(f"{refusal.status}: {refusal.detail}") from refusal
        self.stdout.write(f"{plan.requested} → {plan.model.name}; in order (priority, then weighted random):")
        for route in plan.routes:
            self.stdout.write(
                f"  {route.public_id} {route.name} priority={route.priority} weight={route.weight} "
                f"upstream_model={route.upstream_model}"
            )
