"""Plain SQL for the per-call path's writes (a call's hold and settlement, and every cached balance).

The ORM spends ~300 µs of Python per statement here, several times the database's own round trip
(~70 µs on localhost), and every relayed call makes two of these transactions. The statements are
portable between PostgreSQL and SQLite (both support RETURNING); values go through the backend's
own adapters. The rules are the ledger's: debits are conditional UPDATEs that must match one row,
every transaction's entries sum to zero, all in the caller's `transaction.atomic()`.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey

from ..models import Account, Entry, Hold, Transaction, UsageRecord
from ..pricing import quantize

ACCOUNT = Account._meta.db_table
TRANSACTION = Transaction._meta.db_table
ENTRY = Entry._meta.db_table
HOLD = Hold._meta.db_table
USAGE = UsageRecord._meta.db_table
API_KEY = ApiKey._meta.db_table


def run(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def decimal(value) -> Decimal:
    """A money value read back (SQLite hands NUMERIC back as float or int)."""
    return value if isinstance(value, Decimal) else quantize(Decimal(str(value)))


def at_8_places(expression: str) -> str:
    """`expression` as the ledger counts it: to 8 places.

    The embedded SQLite default computes decimal columns as floats (REAL affinity): unrounded, a
    balance of 0.7 - 0.4 is 0.29999999999999993, which refuses the $0.30 hold it displays as enough,
    and a hold of 0.1 + 0.2 released by 0.3 leaves -5.6e-17 for the CHECK to refuse. Rounded on
    both sides of a comparison and on every write, SQLite agrees with the Decimals it displays.
    PostgreSQL's numeric is exact already.
    """
    return f"ROUND({expression}, 8)" if connection.vendor == "sqlite" else expression


def move(code: str, amount: Decimal, *, require_funds: bool = False) -> int | None:
    """Change a cached balance; a debit with require_funds matches only if the balance covers it.

    Returns the account id, or None when no row matched (no such account, or not enough money).
    This is every cached-balance change outside the batched statements (PostgreSQL's).
    """
    sql = f"UPDATE {ACCOUNT} SET balance = {at_8_places('balance + %s')} WHERE code = %s"  # noqa: S608
    params = [amount, code]
    if require_funds:
        sql += f" AND {at_8_places('balance')} >= {at_8_places('%s')}"
        params.append(-amount)
    rows = run(sql + " RETURNING id", params)
    return rows[0][0] if rows else None


def account_ids(codes: list[str]) -> dict[str, int]:
    placeholders = ", ".join(["%s"] * len(codes))
    return dict(run(f"SELECT code, id FROM {ACCOUNT} WHERE code IN ({placeholders})", codes))  # noqa: S608


def insert_hold(*, request_id: str, user_id: int, api_key_id: int | None, model: str, amount: Decimal, prices) -> int:
    prices_value = Hold._meta.get_field("prices").get_db_prep_value(prices, connection)
    return run(
        f"INSERT INTO {HOLD} (request_id, user_id, api_key_id, model, amount, prices, status, created_at) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, 'open', %s) RETURNING id",
        [request_id, user_id, api_key_id, model, amount, prices_value, now()],
    )[0][0]


def lock_hold(request_id: str):
    """(id, user_id, api_key_id, amount, prices, status, model) of a hold, row-locked, or None."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = run(
        f"SELECT id, user_id, api_key_id, amount, prices, status, model FROM {HOLD} WHERE request_id = %s{lock}",  # noqa: S608
        [request_id],
    )
    if not rows:
        return None
    hold_id, user_id, api_key_id, amount, prices, status, model = rows[0]
    if isinstance(prices, str):
        prices = json.loads(prices)
    return hold_id, user_id, api_key_id, decimal(amount), prices, status, model


def close_hold(hold_id: int, status: str) -> None:
    run(f"UPDATE {HOLD} SET status = %s, closed_at = %s WHERE id = %s", [status, now(), hold_id])  # noqa: S608


def reserve(api_key_id: int, amount: Decimal) -> bool:
    """Count a hold against its key's open holds, if the key's spend cap (if any) takes it as well."""
    fits = f"{at_8_places('spent_usd + reserved_usd + %s')} <= {at_8_places('spend_cap_usd')}"
    rows = run(
        f"UPDATE {API_KEY} SET reserved_usd = {at_8_places('reserved_usd + %s')} "  # noqa: S608
        f"WHERE id = %s AND (spend_cap_usd IS NULL OR {fits}) RETURNING id",
        [amount, api_key_id, amount],
    )
    return bool(rows)


def settle_key(api_key_id: int, held: Decimal, charged: Decimal) -> None:
    """A hold of the key closed: it is no longer in flight, and what it charged is spent."""
    reserved, spent = at_8_places("reserved_usd - %s"), at_8_places("spent_usd + %s")
    statement = f"UPDATE {API_KEY} SET reserved_usd = {reserved}, spent_usd = {spent} WHERE id = %s"  # noqa: S608
    run(statement, [held, charged, api_key_id])


USAGE_COLUMNS = (
    "request_id",
    "user_id",
    "api_key_id",
    "model",
    "channel",
    "owner_id",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "owner_cut_usd",
    "platform_usd",
    "excess_usd",
    "upstream_usd",
    "latency_ms",
    "status",
    "estimated",
    "error",
    "transaction_id",
    "created_at",
)


def insert_usage(values: dict) -> UsageRecord:
    values = {**values, "created_at": timezone.now()}
    params = [
        connection.ops.adapt_datetimefield_value(values[c]) if c == "created_at" else values[c] for c in USAGE_COLUMNS
    ]
    columns = ", ".join(USAGE_COLUMNS)
    placeholders = ", ".join(["%s"] * len(USAGE_COLUMNS))
    record_id = run(f"INSERT INTO {USAGE} ({columns}) VALUES ({placeholders}) RETURNING id", params)[0][0]  # noqa: S608
    return UsageRecord(id=record_id, **values)
