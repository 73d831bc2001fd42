"""The batcher: one writer per kind of batched write per event loop, on its own async connection.

While a batch commits the next one gathers, so under load many calls share a statement and a commit,
and a lone call waits for nothing: it is a batch of one.

No batch may hold up the worker behind a row lock (an operator's long transaction, a stuck writer):
- a settlement batch is its own transaction, its `lock_timeout` and `statement_timeout` set with SET
  LOCAL inside it (no session state: a connection pooler may hand the connection to anyone between
  batches). Settlements gather for 50 ms anyway; the two round trips more cost them nothing;
- a hold batch, which callers wait on, stays one autocommit statement: the same two round trips on
  every batch cost 10-20 % of the throughput at 50 callers (make bench, 2026-12-03). The worker
  cancels it itself after TOKENHUB_LEDGER_LOCK_TIMEOUT_MS (psycopg sends the server a cancel request
  when the await is cancelled; the statement ends, the connection stays usable).
A batch refused or timed out is declined whole and each of its calls takes the per-call path, which
returns a hold the batch did write (a cancel that came after the commit) rather than hold twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass

import dj_database_url
import psycopg
from django.conf import settings

from tokenhub.metrics import SETTLEMENT_BACKLOG

from .batch_statements import HOLDS_SQL, SETTLES_SQL
from .errors import LedgerBehind

log = logging.getLogger(__name__)

MAX_BATCH = 200


def enabled() -> bool:
    return settings.TOKENHUB_LEDGER_BATCHING and settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


class _Batcher:
    """Gathers rows while the previous batch runs; one batch at a time on its own connection.

    With a `backlog_max`, `has_room` is cleared while that many rows wait, so that callers can hold
    back new work rather than let a stalled database grow the queue (and the memory) without end.
    """

    def __init__(
        self,
        statement: str,
        gather_seconds: float = 0.0,
        backlog_max: int = 0,
        backlog_wait: float = 0.0,
        own_transaction: bool = False,
    ):
        self.statement, self.gather_seconds = statement, gather_seconds
        self.own_transaction = own_transaction  # SET LOCAL timeouts in a transaction; else a deadline
        self.backlog_max, self.backlog_wait = backlog_max, backlog_wait
        self.pending: list[tuple[dict, asyncio.Future]] = []
        self.connection: psycopg.AsyncConnection | None = None
        self.running = False
        self.urgent = False  # a row someone waits on is pending: write without gathering
        self.gathering: asyncio.Future | None = None
        self.has_room = asyncio.Event()
        self.has_room.set()

    def enqueue(self, row: dict, *, urgent: bool = False) -> asyncio.Future:
        """The row's future: the id written for it, or None when the batch declined it.

        An urgent row (someone is waiting on it) ends the gathering at once.
        """
        future = asyncio.get_running_loop().create_future()
        self.pending.append((row, future))
        if self.backlog_max:  # the settlements' batcher: its backlog is an operator's figure
            SETTLEMENT_BACKLOG.set(len(self.pending))
        if self.backlog_max and len(self.pending) >= self.backlog_max:
            self.has_room.clear()
        if urgent:
            self.urgent = True
            if self.gathering is not None and not self.gathering.done():
                self.gathering.set_result(None)
        if not self.running:
            self.running = True
            track(asyncio.create_task(self._drain()))
        return future

    async def wait_for_room(self) -> None:
        """Return once fewer than backlog_max rows wait; raise LedgerBehind after backlog_wait seconds."""
        if self.has_room.is_set():
            return
        try:
            await asyncio.wait_for(self.has_room.wait(), self.backlog_wait)
        except TimeoutError:
            raise LedgerBehind(
                f"the ledger is behind: this worker's last {self.backlog_max} finished calls are still being recorded"
            ) from None

    async def _gather(self) -> None:
        """Let more rows arrive for gather_seconds, unless an urgent row ends it sooner."""
        loop = asyncio.get_running_loop()
        self.gathering = loop.create_future()
        timer = loop.call_later(self.gather_seconds, _finish, self.gathering)
        try:
            await self.gathering
        finally:
            timer.cancel()
            self.gathering = None

    async def _drain(self) -> None:
        try:
            while self.pending:
                if self.gather_seconds and not self.urgent and len(self.pending) < MAX_BATCH:
                    await self._gather()
                self.urgent = False
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                if self.backlog_max:
                    SETTLEMENT_BACKLOG.set(len(self.pending))
                if len(self.pending) < self.backlog_max:
                    self.has_room.set()
                try:
                    written = await self._write([row for row, _future in batch])
                except Exception as exc:  # every row falls back to the ledger, which reports
                    log.warning("ledger batch of %d refused, each call takes the ledger's path: %s", len(batch), exc)
                    written = {}
                    stats.refused += 1
                for row, future in batch:
                    if not future.done():
                        future.set_result(written.get(row["request_id"]))
        finally:
            self.running = False

    async def _write(self, rows: list[dict]) -> dict[str, int]:
        # n: arrival order, so ids follow it; Decimals as exact strings, which PostgreSQL reads as numeric.
        params = {"rows": json.dumps([{**row, "n": n} for n, row in enumerate(rows)], default=str)}
        for retry in (True, False):
            if self.connection is None or self.connection.closed:
                self.connection = await connect()
            try:
                if self.own_transaction:
                    return await self._in_transaction(params)
                return await self._with_deadline(params)
            except psycopg.Error:
                if not self.connection.broken:
                    await self._roll_back()
                    raise
                self.connection = None
                # Broken since the last batch (the database restarted): once more, on a new connection. Safe
                # even if the first one committed: its holds would be closed, its request ids taken, and those
                # rows are declined. Without it, settlements of calls served meanwhile fall to the ledger's
                # path, whose pooled connections are broken too, and are released: answers given for free.
                if not retry:
                    raise
        raise AssertionError("unreachable")

    async def _in_transaction(self, params: dict) -> dict[str, int]:
        """The statement in its own transaction, its timeouts SET LOCAL (one round trip each way more)."""
        begin = begin_with_timeouts()
        if begin:
            await self.connection.execute(begin, prepare=False)
        cursor = await self.connection.execute(self.statement, params, prepare=True)
        stats.statements += 1
        _ok, request_ids, ids = await cursor.fetchone()
        if begin:
            await self.connection.execute("COMMIT", prepare=False)
        return dict(zip(request_ids, ids, strict=True))

    async def _with_deadline(self, params: dict) -> dict[str, int]:
        """The statement alone (autocommit), cancelled if it runs past the lock timeout."""
        deadline_ms = settings.TOKENHUB_LEDGER_LOCK_TIMEOUT_MS or settings.TOKENHUB_LEDGER_STATEMENT_TIMEOUT_MS
        async with asyncio.timeout(deadline_ms / 1000 if deadline_ms else None):
            cursor = await self.connection.execute(self.statement, params, prepare=True)
            stats.statements += 1
            _ok, request_ids, ids = await cursor.fetchone()
        return dict(zip(request_ids, ids, strict=True))

    async def _roll_back(self) -> None:
        """After a refused statement: end its transaction, so that the next batch starts clean."""
        if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                await self.connection.execute("ROLLBACK", prepare=False)
            except psycopg.Error:
                self.connection = None  # a new connection for the next batch


def begin_with_timeouts() -> str:
    """BEGIN and the batch's lock and statement timeouts, or "" when neither is set (one statement alone).

    A batch that waits longer for a row lock (an operator's long transaction, a stuck writer) or runs
    longer than this is refused whole, and its calls take the per-call path one by one, rather than
    every call of the worker waiting behind it.
    """
    lock_ms, statement_ms = settings.TOKENHUB_LEDGER_LOCK_TIMEOUT_MS, settings.TOKENHUB_LEDGER_STATEMENT_TIMEOUT_MS
    if not (lock_ms or statement_ms):
        return ""
    return f"BEGIN; SET LOCAL lock_timeout = {int(lock_ms)}; SET LOCAL statement_timeout = {int(statement_ms)}"


def _finish(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def connect() -> psycopg.AsyncConnection:
    """The batcher's connection. Its two statements are prepared on it (prepare=True; BEGIN and COMMIT
    never are) unless it goes through a transaction-mode pooler: there the next statement may meet
    another PostgreSQL session, which has no such statement or a different one under its name
    (Debian's PgBouncer 1.18 answers `prepared statement "_pg3_0" already exists`)."""
    pooled = settings.DB_TRANSACTION_POOLING and not settings.TOKENHUB_LEDGER_DATABASE_URL
    # prepare_threshold=None turns preparing off on the connection, whatever execute() asks.
    return await psycopg.AsyncConnection.connect(
        **connection_params(), autocommit=True, prepare_threshold=None if pooled else 5
    )


def connection_params() -> dict:
    """psycopg's connect arguments for the batcher: TOKENHUB_LEDGER_DATABASE_URL or the default database
    (without Django's pool options)."""
    if settings.TOKENHUB_LEDGER_DATABASE_URL:
        db = dj_database_url.parse(settings.TOKENHUB_LEDGER_DATABASE_URL)
    else:
        db = settings.DATABASES["default"]
    params = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    options = {k: v for k, v in db.get("OPTIONS", {}).items() if k not in ("pool", "server_side_binding")}
    return {k: v for k, v in {**params, **options}.items() if v is not None}


@dataclass
class Stats:
    """What this process has sent (the hot-path test reads it)."""

    statements: int = 0
    refused: int = 0  # batches the database refused whole (each of their calls took the ledger's path)


stats = Stats()
_tasks: set[asyncio.Task] = set()


def track(task: asyncio.Task) -> None:
    """Keep a background write alive until it ends, and let a stopping worker wait for it (`busy`)."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def busy() -> list[asyncio.Task]:
    """This process's batch writers still running (a stopping worker waits for them)."""
    return list(_tasks)


class _Writers:
    def __init__(self):
        self.holds = _Batcher(HOLDS_SQL)  # callers wait on it: one statement, under a deadline
        # Nobody waits for a settlement: letting them gather for a moment puts several calls in one
        # statement even for a single caller, whose settlements otherwise cost the database a statement each.
        self.settles = _Batcher(
            SETTLES_SQL,
            own_transaction=True,
            gather_seconds=settings.TOKENHUB_SETTLEMENT_GATHER_MS / 1000,
            backlog_max=settings.TOKENHUB_SETTLEMENT_BACKLOG_MAX,
            backlog_wait=settings.TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS,
        )


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def for_this_loop() -> _Writers:
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        found = _writers[loop] = _Writers()
    return found


async def close() -> None:
    """Close this loop's connections (tests; a worker's connections end with its process)."""
    found = _writers.pop(asyncio.get_running_loop(), None)
    if found:
        for batcher in (found.holds, found.settles):
            if batcher.connection is not None:
                await batcher.connection.close()
