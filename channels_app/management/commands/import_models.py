from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError

from channels_app.catalog import CatalogFormatError, import_catalog
from tokenhub.lib.commands import OperatorCommand
from tokenhub.lib.progress import Progress


class Command(OperatorCommand):
    help = "Load or re-sync the model catalog from JSON, CSV or LiteLLM's model_prices_and_context_window.json."
    shares_state = True

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the catalog file (- for stdin, read as JSON).")

    def handle(self, *args, file, **options):
        if file == "-":
            text, name = sys.stdin.read(), "stdin.json"
        else:
            path = Path(file)
            if not path.exists():
                raise CommandError(f"No such file: {file}")
            text, name = path.read_text(encoding="utf-8"), path.name
        try:
            with Progress(self.stderr, "models") as progress:
                report = import_catalog(text, name, progress=progress.update)
        except CatalogFormatError as exc:
            raise CommandError(str(exc)) from exc
        for error in report.errors:
            self.stderr.write(f"rejected {error}")
        self.stdout.write(
            f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
            f"aliases added {report.aliases_created}, skipped (other modes) {report.skipped}, "
            f"rejected {len(report.errors)}"
        )
