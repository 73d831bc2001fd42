from __future__ import annotations

import argparse
from datetime import date

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from billing import exports
from tokenhub.lib.commands import OperatorCommand
from tokenhub.lib.progress import Progress


def utc_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


class Command(OperatorCommand):
    help = (
        "Write the usage records of UTC days FROM up to, not including, TO to stdout as CSV (the usage "
        "download's columns, then user and channel) or JSON lines; progress goes to stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", type=utc_day, required=True, help="First UTC day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="end", type=utc_day, required=True, help="UTC day after the last one.")
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--user", help="Only this user's calls (by username).")
        who.add_argument("--user-id", type=int, help="Only this user's calls (by numeric id).")
        parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")

    def handle(self, *args, start, end, user, user_id, format, **options):
        if end <= start:
            raise CommandError(f"--to ({end}) must be after --from ({start}): --to is exclusive")
        if user is not None or user_id is not None:
            user_id = self._user_id(user, user_id)
        rows = exports.records_between(start, end, user_id=user_id)
        totals = exports.daily_totals_between(start, end, user_id=user_id)  # days past retention, first
        lines = exports.csv_lines if format == "csv" else exports.jsonl_lines
        out = self.stdout._out  # lines are written as they are, without OutputWrapper's endings
        with Progress(self.stderr, "rows", total=rows.count() + totals.count()) as progress:
            for line in lines(exports.OPERATOR_COLUMNS, self._values(totals, rows, progress)):
                out.write(line)
        out.flush()
        self.stderr.write(f"exported {progress.done} row(s)")

    def _values(self, totals, rows, progress: Progress):
        for row in exports.iterate(totals):
            progress.advance()
            yield exports.daily_values(row)
        for record in exports.iterate(rows):
            progress.advance()
            yield exports.operator_values(record)

    def _user_id(self, username: str | None, user_id: int | None) -> int:
        users = get_user_model().objects
        found = users.filter(username=username) if username is not None else users.filter(pk=user_id)
        pk = found.values_list("pk", flat=True).first()
        if pk is None:
            raise CommandError(f"no such user: {username if username is not None else f'id {user_id}'}")
        return pk
