from __future__ import annotations

from django.core.management.base import CommandError

from channels_app import price_sync
from channels_app.catalog import CatalogFormatError
from tokenhub.lib.commands import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Compare a price map (LiteLLM's model_prices_and_context_window.json, TokenHub JSON or CSV; a file or "
        "an http(s) URL) with the catalog and print what changed, what is new and what vanished (old → new, per "
        "1M tokens). Nothing changes without --yes; vanished models are reported, never deleted."
    )
    shares_state = True

    def add_arguments(self, parser):
        parser.add_argument("source", help="A file path or an http(s) URL.")
        parser.add_argument("--yes", action="store_true", help="Apply the new and changed models.")

    def handle(self, *args, source, yes, **options):
        try:
            text, filename = price_sync.read_source(source)
            result, rows = price_sync.diff(text, filename)
        except CatalogFormatError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(price_sync.format_diff(result))
        if not yes:
            if not result.empty:
                self.stdout.write("Nothing applied: run again with --yes to apply the changed and new models.")
            return
        report = price_sync.apply(rows)  # routing re-reads the catalog on commit (channels_app.signals)
        for error in report.errors:
            self.stderr.write(f"rejected {error}")
        self.stdout.write(f"Applied: {report.created} created, {report.updated} updated.")
