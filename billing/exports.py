"""Usage exports: the user's CSV download and the operators' `export_usage`, one set of columns.

The operators' export walks the table by primary key in chunks (keyset pagination), so its memory
stays constant on millions of rows and it needs no server-side cursor (which PgBouncer's
transaction mode would not keep).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time

from .models import UsageDaily, UsageRecord

USAGE_COLUMNS = [
    "time",
    "request_id",
    "model",
    "key",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "estimated",
]
# The operators' export spans users: who made the call and which channel served it come last; `calls` is 1
# for a call and the number of calls for a day past retention, whose rows are daily totals (billing/retention.py:
# request_id "daily total", time the day's start, latency_ms the average, estimated how many were estimated).
OPERATOR_COLUMNS = [*USAGE_COLUMNS, "user", "channel", "calls"]
DAILY_TOTAL = "daily total"
CHUNK = 2000


def usage_values(record: UsageRecord) -> list:
    return [
        record.created_at.isoformat(),
        record.request_id,
        record.model,
        record.api_key.name if record.api_key else "",
        record.input_tokens,
        record.output_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
        str(record.cost_usd),
        record.latency_ms,
        record.status,
        record.estimated,
    ]


def operator_values(record: UsageRecord) -> list:
    return [*usage_values(record), record.user.get_username(), record.channel, 1]


def daily_values(row: UsageDaily) -> list:
    return [
        utc_day_start(row.day).isoformat(),
        DAILY_TOTAL,
        row.model,
        row.api_key.name if row.api_key else "",
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        str(row.cost_usd),
        row.latency_ms_total // row.calls if row.calls else 0,
        row.status,
        row.estimated_calls,
        row.user.get_username(),
        row.channel,
        row.calls,
    ]


def daily_totals_between(start: date, end: date, user_id: int | None = None):
    rows = UsageDaily.objects.filter(day__gte=start, day__lt=end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    return rows


def utc_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def records_between(start: date, end: date, user_id: int | None = None):
    """Usage from the UTC day `start` up to, not including, the UTC day `end`."""
    rows = UsageRecord.objects.filter(created_at__gte=utc_day_start(start), created_at__lt=utc_day_start(end))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    return rows


def iterate(rows, chunk: int = CHUNK) -> Iterator[UsageRecord]:
    rows = rows.select_related("api_key", "user").order_by("pk")
    last = 0
    while True:
        page = list(rows.filter(pk__gt=last)[:chunk])
        yield from page
        if len(page) < chunk:
            return
        last = page[-1].pk


class _Line:
    def write(self, value: str) -> str:
        return value


# A cell a spreadsheet would run as a formula (a key or model name of a caller's choosing, =HYPERLINK(…)).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value):
    """Text cells starting like a formula are prefixed with ' (OWASP's advice); numbers stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def csv_lines(columns: list[str], rows: Iterator[list]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(columns)
    for values in rows:
        yield writer.writerow([inert(value) for value in values])


def jsonl_lines(columns: list[str], rows: Iterator[list]) -> Iterator[str]:
    for values in rows:
        yield json.dumps(dict(zip(columns, values, strict=True)), ensure_ascii=False) + "\n"
