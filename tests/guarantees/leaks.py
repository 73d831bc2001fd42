"""Where a secret could leak, and a scan for the ones the suite made: every raw sk-hub key `create_key` returned
and every upstream key `crypto.encrypt` sealed (recorded while the suite runs, see tests/conftest.py).

A finding names the place and the secret's first characters only: a report must not leak it again."""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import connection

from tests.servers import LOG_DIR

MIN_LENGTH = 12  # shorter upstream keys are the fake provider's knobs ("good", "drip-150"), words in any page
SECRETS: set[str] = set()
FOUND_IN_LOGS: list[str] = []


def record(secret: str) -> None:
    if isinstance(secret, str) and len(secret) >= MIN_LENGTH:
        SECRETS.add(secret)


def shown(secret: str) -> str:
    return secret[:10] + "…"


def in_text(text: str, where: str, secrets=None) -> list[str]:
    return [f"{where}: {shown(s)}" for s in sorted(secrets or SECRETS) if s in text]


def in_server_logs(secrets=None, since: float = 0.0) -> list[str]:
    """The servers' logs written since `since` (older ones are other runs', with other secrets)."""
    found = []
    for path in sorted(Path(LOG_DIR).glob("*.log")) if Path(LOG_DIR).is_dir() else ():
        if path.stat().st_mtime >= since:
            found += in_text(path.read_text(errors="replace"), f"server log {path.name}", secrets)
    return found


TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


def in_database(secrets=None, skip_columns=()) -> list[str]:
    """Every text column of every table (PostgreSQL's information_schema; SQLite is not scanned)."""
    secrets = sorted(secrets or SECRETS)
    if connection.vendor != "postgresql" or not secrets:
        return []
    patterns = ["%" + s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for s in secrets]
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = ANY(%s)",
            [list(TEXT_TYPES)],
        )
        for table, column in cursor.fetchall():
            if f"{table}.{column}" in skip_columns:
                continue
            quoted_table, quoted_column = connection.ops.quote_name(table), connection.ops.quote_name(column)
            cursor.execute(
                f"SELECT {quoted_column}::text FROM {quoted_table} WHERE {quoted_column}::text LIKE ANY(%s)",
                [patterns],
            )
            for (value,) in cursor.fetchall():
                found += in_text(value, f"database {table}.{column}", secrets)
    return found


class LogWatch(logging.Handler):
    """Checks every record the test process logs (what pytest captures) as it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted cannot leak through this handler either
            return
        FOUND_IN_LOGS.extend(in_text(text, f"log record {record.name}"))
