"""The relay's holds and settlements on PostgreSQL, batched per worker: one statement, one commit a batch.

Why: every call of a user moves the same two cached balances (`user:N`, `hold:N`). As one database
transaction per call, concurrent calls queue on those rows' locks until each commit is done (measured on
the bench machine: about 200 hold+settle pairs a second at 50 callers, against 400 for one caller), and
each call hops to a thread for Django's sync connection. Here each worker has one async connection per
kind of write; while a batch commits the next one gathers, so under load many calls share a statement
and a commit (1,500 pairs a second at 50 callers in the same measurement), and a lone call waits for
nothing: it is a batch of one.

The ledger's rules hold inside a batch: each call is its own ledger transaction whose entries sum to
zero; the debit of a balance is a conditional UPDATE; balance rows are locked in one order (users'
balances, then their holds, by code), as `billing.ledger` does; and `tokenhub_ledger_check` aborts the
whole statement (so the batch's one database transaction) if any transaction would be short of a leg.

A key's open holds count against its spend cap (`reserved_usd`) in the same statement, by the same
rule as the balance: all of a key's holds in the batch fit its cap, or none go on. Whatever a batch
cannot do — a short balance, a spend cap the batch's holds would pass, accounts not created yet, a hold
already closed, a failed statement — comes back as None and that call takes
`billing.ledger`'s path, which explains the refusal or repairs the state. So this module only ever
makes the common case cheaper; the ledger stays the authority.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from django.conf import settings

from . import ledger
from .models import ZERO, Hold, HoldStatus, UsageRecord, UsageStatus
from .pricing import Prices, Usage, cost_of

log = logging.getLogger(__name__)

MAX_BATCH = 200

HOLDS_SQL = """
WITH req AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS r(request_id text, user_id bigint, api_key_id bigint, model text, amount numeric, prices jsonb, n bigint)
), locked AS (
    SELECT id, code FROM billing_account WHERE code = ANY(ARRAY(SELECT 'user:' || user_id FROM req))
    ORDER BY code FOR UPDATE
), held AS (
    -- Locks in the one order every path takes them: balances, then holds, then keys (else a batch
    -- holding a key waits for a hold account a settlement holds while it waits for that key).
    SELECT id FROM billing_account WHERE code = ANY(ARRAY(SELECT 'hold:' || user_id FROM req))
      AND (SELECT count(*) FROM locked) >= 0 ORDER BY code FOR UPDATE
), per_key AS (
    SELECT api_key_id, sum(amount) AS total FROM req WHERE api_key_id IS NOT NULL GROUP BY api_key_id
), fitting AS (
    -- Keys whose spend cap (if any) takes all their holds in the batch besides those in flight;
    -- the other keys' holds take the ledger's path.
    SELECT k.id FROM accounts_apikey k JOIN per_key p ON p.api_key_id = k.id
    WHERE k.id = ANY(ARRAY(SELECT api_key_id FROM per_key)) AND (SELECT count(*) FROM held) >= 0
      AND (k.spend_cap_usd IS NULL OR k.spent_usd + k.reserved_usd + p.total <= k.spend_cap_usd)
    ORDER BY k.id FOR UPDATE OF k
), eligible AS (
    SELECT * FROM req WHERE api_key_id IS NULL OR api_key_id IN (SELECT id FROM fitting)
), per_user AS (
    SELECT user_id, sum(amount) AS total FROM eligible GROUP BY user_id
), debit AS (
    -- All of a user's holds in the batch, or none (then each takes the ledger's own path).
    UPDATE billing_account a SET balance = a.balance - p.total
    FROM per_user p, locked l
    WHERE a.id = l.id AND l.code = 'user:' || p.user_id AND a.balance >= p.total
      AND EXISTS (SELECT 1 FROM billing_account h WHERE h.code = 'hold:' || p.user_id)
    RETURNING a.id, p.user_id
), credit AS (
    UPDATE billing_account a SET balance = a.balance + p.total
    FROM per_user p
    WHERE a.code = ANY(ARRAY(SELECT 'hold:' || user_id FROM debit)) AND a.code = 'hold:' || p.user_id
      AND p.user_id IN (SELECT user_id FROM debit)
    RETURNING a.id, p.user_id
), accepted AS (
    SELECT eligible.*, d.id AS debit_id, c.id AS credit_id
    FROM eligible JOIN debit d USING (user_id) JOIN credit c USING (user_id)
), reserved AS (
    UPDATE accounts_apikey k SET reserved_usd = k.reserved_usd + s.total
    FROM (SELECT api_key_id, sum(amount) AS total FROM accepted WHERE api_key_id IS NOT NULL GROUP BY api_key_id) s
    WHERE k.id = s.api_key_id
    RETURNING k.id
), txn AS (
    INSERT INTO billing_transaction (kind, idempotency_key, memo, actor, created_at)
    SELECT 'hold', 'hold:' || request_id, left(model, 200), 'system', now() FROM accepted ORDER BY n
    RETURNING id, idempotency_key
), joined AS (
    SELECT accepted.*, txn.id AS txn_id FROM accepted JOIN txn ON txn.idempotency_key = 'hold:' || accepted.request_id
), entries AS (
    INSERT INTO billing_entry (transaction_id, account_id, amount)
    SELECT txn_id, debit_id, -amount FROM joined UNION ALL SELECT txn_id, credit_id, amount FROM joined
    RETURNING transaction_id, amount
), made AS (
    INSERT INTO billing_hold (request_id, user_id, api_key_id, model, amount, prices, status, created_at)
    SELECT request_id, user_id, api_key_id, model, amount, prices, 'open', now() FROM joined ORDER BY n
    RETURNING request_id, id
)
SELECT tokenhub_ledger_check(
           (SELECT count(*) FROM debit) = (SELECT count(*) FROM credit)
           AND (SELECT count(*) FROM entries) = 2 * (SELECT count(*) FROM joined)
           AND NOT EXISTS (SELECT 1 FROM entries GROUP BY transaction_id HAVING sum(amount) <> 0)
           AND (SELECT count(*) FROM made) = (SELECT count(*) FROM joined)
           AND (SELECT count(*) FROM reserved) = (SELECT count(DISTINCT api_key_id) FROM accepted),
           'hold batch'),
       ARRAY(SELECT request_id FROM made), ARRAY(SELECT id FROM made)
"""

SETTLES_SQL = """
WITH req AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        hold_id bigint, request_id text, user_id bigint, api_key_id bigint, owner_id bigint, held numeric,
        refund numeric, cost_usd numeric, owner_cut_usd numeric, platform_usd numeric, excess_usd numeric,
        kind text, hold_status text, model text, channel text, input_tokens int, output_tokens int,
        cache_read_tokens int, cache_write_tokens int, reasoning_tokens int, latency_ms int, status text,
        estimated bool, error text, n bigint)
), closed AS (
    -- Only open holds whose payees' accounts exist go on; the rest take the ledger's path. Holds are
    -- found by id; written as `status || ''`, the status test cannot use the (status, created_at) index,
    -- whose 'open' entries pile up between vacuums (10,000 under load) and which a generic plan chose.
    UPDATE billing_hold h SET status = req.hold_status, closed_at = now() FROM req
    WHERE h.id = ANY(ARRAY(SELECT hold_id FROM req)) AND h.id = req.hold_id AND h.status || '' = 'open'
      AND (req.platform_usd = 0 OR EXISTS (SELECT 1 FROM billing_account WHERE code = 'platform:revenue'))
      AND (req.owner_cut_usd = 0 OR EXISTS (SELECT 1 FROM billing_account WHERE code = 'owner:' || req.owner_id))
    RETURNING h.id
), live AS (
    SELECT req.* FROM req JOIN closed ON closed.id = req.hold_id
), per_user AS (
    SELECT user_id, sum(refund) AS refund, sum(held) AS held FROM live GROUP BY user_id
), locked AS (
    SELECT id, code FROM billing_account WHERE code = ANY(ARRAY(SELECT 'user:' || user_id FROM per_user))
    ORDER BY code FOR UPDATE
), refunded AS (
    UPDATE billing_account a SET balance = a.balance + p.refund
    FROM per_user p, locked l
    WHERE a.id = l.id AND l.code = 'user:' || p.user_id
    RETURNING a.id, p.user_id
), released AS (
    UPDATE billing_account a SET balance = a.balance - p.held
    FROM per_user p
    WHERE a.code = ANY(ARRAY(SELECT 'hold:' || user_id FROM refunded)) AND a.code = 'hold:' || p.user_id
    RETURNING a.id, p.user_id
), spent AS (
    -- The holds are no longer in flight; what they charged (never more than they held) is spent.
    UPDATE accounts_apikey k SET spent_usd = k.spent_usd + s.cost_usd, reserved_usd = k.reserved_usd - s.held
    FROM (SELECT api_key_id, sum(cost_usd) AS cost_usd, sum(held) AS held FROM live WHERE api_key_id IS NOT NULL
          GROUP BY api_key_id HAVING sum(held) > 0) s
    WHERE k.id = s.api_key_id AND (SELECT count(*) FROM released) > 0
    RETURNING k.id
), txn AS (
    INSERT INTO billing_transaction (kind, idempotency_key, memo, actor, created_at)
    SELECT kind, 'settle:' || request_id, left(model, 200), 'system', now() FROM live ORDER BY n
    RETURNING id, idempotency_key
), joined AS (
    SELECT live.*, txn.id AS txn_id FROM live JOIN txn ON txn.idempotency_key = 'settle:' || live.request_id
), legs AS (
    SELECT j.txn_id, r.id AS account_id, j.refund AS amount FROM joined j JOIN refunded r USING (user_id)
    UNION ALL SELECT j.txn_id, r.id, -j.held FROM joined j JOIN released r USING (user_id)
    UNION ALL SELECT j.txn_id, a.id, j.platform_usd FROM joined j, billing_account a
        WHERE a.code = 'platform:revenue'
    UNION ALL SELECT j.txn_id, a.id, j.owner_cut_usd FROM joined j JOIN billing_account a
        ON a.code = 'owner:' || j.owner_id
), entries AS (
    INSERT INTO billing_entry (transaction_id, account_id, amount)
    SELECT txn_id, account_id, amount FROM legs WHERE amount <> 0
    RETURNING transaction_id, amount
), usage AS (
    INSERT INTO billing_usagerecord (
        request_id, user_id, api_key_id, model, channel, owner_id, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, owner_cut_usd, platform_usd,
        excess_usd, latency_ms, status, estimated, error, transaction_id, created_at)
    SELECT request_id, user_id, api_key_id, model, channel, owner_id, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, owner_cut_usd, platform_usd,
        excess_usd, latency_ms, status, estimated, error, txn_id, now()
    FROM joined ORDER BY n
    RETURNING request_id, id
)
SELECT tokenhub_ledger_check(
           (SELECT count(*) FROM entries) = (SELECT coalesce(sum((refund <> 0)::int + (held <> 0)::int
                + (platform_usd <> 0)::int + (owner_cut_usd <> 0)::int), 0) FROM joined)
           AND NOT EXISTS (SELECT 1 FROM entries GROUP BY transaction_id HAVING sum(amount) <> 0)
           AND (SELECT count(*) FROM usage) = (SELECT count(*) FROM live)
           AND (SELECT count(*) FROM spent) = (SELECT count(DISTINCT api_key_id) FROM live WHERE held > 0),
           'settle batch'),
       ARRAY(SELECT request_id FROM usage), ARRAY(SELECT id FROM usage)
"""


def _compact(statement: str) -> str:
    """One line without comments: psycopg caches the parsing of statements under 4 KB only."""
    lines = (line.split("--", 1)[0] for line in statement.splitlines())
    return " ".join(" ".join(lines).split())


HOLDS_SQL, SETTLES_SQL = _compact(HOLDS_SQL), _compact(SETTLES_SQL)


def enabled() -> bool:
    return settings.TOKENHUB_LEDGER_BATCHING and settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


class LedgerBehind(Exception):
    """This worker's settlements are not being written as fast as calls finish: no new call starts."""


class _Batcher:
    """Gathers rows while the previous batch runs; one batch at a time on its own connection.

    With a `backlog_max`, `has_room` is cleared while that many rows wait, so that callers can hold
    back new work rather than let a stalled database grow the queue (and the memory) without end.
    """

    def __init__(self, statement: str, gather_seconds: float = 0.0, backlog_max: int = 0, backlog_wait: float = 0.0):
        self.statement, self.gather_seconds = statement, gather_seconds
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
        if self.backlog_max and len(self.pending) >= self.backlog_max:
            self.has_room.clear()
        if urgent:
            self.urgent = True
            if self.gathering is not None and not self.gathering.done():
                self.gathering.set_result(None)
        if not self.running:
            self.running = True
            _tasks.add(task := asyncio.create_task(self._drain()))
            task.add_done_callback(_tasks.discard)
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
                self.connection = await psycopg.AsyncConnection.connect(**connection_params(), autocommit=True)
            try:
                cursor = await self.connection.execute(self.statement, params, prepare=True)
                stats.statements += 1
                _ok, request_ids, ids = await cursor.fetchone()
                return dict(zip(request_ids, ids, strict=True))
            except psycopg.Error:
                if not self.connection.broken:
                    raise
                self.connection = None
                # Broken since the last batch (the database restarted): once more, on a new connection. Safe
                # even if the first one committed: its holds would be closed, its request ids taken, and those
                # rows are declined. Without it, settlements of calls served meanwhile fall to the ledger's
                # path, whose pooled connections are broken too, and are released: answers given for free.
                if not retry:
                    raise
        raise AssertionError("unreachable")


def _finish(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def connection_params() -> dict:
    """psycopg's connect arguments for the default database (without Django's pool options)."""
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


def busy() -> list[asyncio.Task]:
    """This process's batch writers still running (a stopping worker waits for them)."""
    return list(_tasks)


class _Writers:
    def __init__(self):
        self.holds = _Batcher(HOLDS_SQL)
        # Nobody waits for a settlement: letting them gather for a moment puts several calls in one
        # statement even for a single caller, whose settlements otherwise cost the database a statement each.
        self.settles = _Batcher(
            SETTLES_SQL,
            gather_seconds=settings.TOKENHUB_SETTLEMENT_GATHER_MS / 1000,
            backlog_max=settings.TOKENHUB_SETTLEMENT_BACKLOG_MAX,
            backlog_wait=settings.TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS,
        )


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _for_this_loop() -> _Writers:
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


# --- What the relay calls --------------------------------------------------------------------------


async def hold(
    *,
    user_id: int,
    amount: Decimal,
    request_id: str,
    api_key_id: int | None,
    model: str,
    prices: Prices,
) -> Hold:
    """`ledger.hold`, batched when it can be; raises what the ledger raises.

    A caller that leaves while its hold is being written (a client disconnect cancels the request)
    does not leave the money held until the sweeper comes: the hold is released once it exists.
    """
    amount = ledger.money(amount)
    batching = enabled()
    if batching:
        # Nobody waits for a settlement, so without this a database that stops writing them would let
        # finished calls pile up in memory, each with its hold open, for as long as callers keep coming.
        await _for_this_loop().settles.wait_for_room()
    if batching and amount > 0:
        captured = prices.as_dict()
        row = {
            "request_id": request_id,
            "user_id": user_id,
            "api_key_id": api_key_id,
            "model": model,
            "amount": amount,
            "prices": captured,
        }

        def made(hold_id: int | None) -> Hold | None:
            if hold_id is None:
                return None
            return Hold(
                id=hold_id,
                request_id=request_id,
                user_id=user_id,
                api_key_id=api_key_id,
                model=model,
                amount=amount,
                prices=captured,
                status=HoldStatus.OPEN,
            )

        hold_id = await _shielded(_for_this_loop().holds.enqueue(row), made)
        if hold_id is not None:
            return made(hold_id)
    # The ledger's path (in a worker thread): explains a refusal, creates missing accounts.
    writing = asyncio.ensure_future(
        ledger.ahold(
            user_id=user_id,
            amount=amount,
            request_id=request_id,
            api_key_id=api_key_id,
            model=model,
            prices=prices,
        )
    )
    return await _shielded(writing, lambda hold: hold)


async def _shielded(writing: asyncio.Future, held):
    """Await a hold being written; if the caller leaves meanwhile, release the hold once it exists.

    `held(result)` turns the write's result into the Hold to release (or None: nothing was held).
    """
    try:
        return await asyncio.shield(writing)
    except asyncio.CancelledError:
        writing.add_done_callback(lambda done: _give_back(done, held))
        raise


def _give_back(writing: asyncio.Future, held) -> None:
    if writing.cancelled() or writing.exception() is not None:
        return
    hold = held(writing.result())
    if hold is None:
        return  # the batch declined: nothing was held
    task = asyncio.ensure_future(release(hold, error="the caller left before the call started"))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def settle(
    hold: Hold,
    *,
    usage: Usage,
    cost: Decimal | None = None,
    owner_id: int | None = None,
    owner_cut: Decimal = ZERO,
    model: str = "",
    channel: str = "",
    latency_ms: int = 0,
    status: str = UsageStatus.OK,
    estimated: bool = False,
    error: str = "",
    urgent: bool = False,
) -> UsageRecord:
    """`ledger.settle` for the relay's own hold, batched when it can be.

    Settlements gather for a moment before their statement (nobody waits for them: the answer has
    gone out); an `urgent` one is written at once, with whatever has gathered so far.
    """
    details = {
        "owner_id": owner_id,
        "owner_cut": owner_cut,
        "model": model,
        "channel": channel,
        "latency_ms": latency_ms,
        "status": status,
        "estimated": estimated,
        "error": error,
    }
    if cost is None and hold.prices is not None:
        cost = cost_of(usage, Prices.from_dict(hold.prices))
    if enabled() and cost is not None:
        cost = ledger.money(cost)
        figures = ledger.settlement_figures(hold.amount, cost, owner_id, owner_cut)
        record = ledger.usage_record_values(
            request_id=hold.request_id,
            user_id=hold.user_id,
            api_key_id=hold.api_key_id,
            model=model or hold.model,
            channel=channel,
            owner_id=owner_id,
            usage=usage,
            figures=figures,
            cost=cost,
            latency_ms=latency_ms,
            status=status,
            estimated=estimated,
            error=error,
        )
        row = {
            **record,
            "hold_id": hold.id,
            "held": hold.amount,
            "refund": figures.refund,
            "kind": figures.kind,
            "hold_status": figures.hold_status,
        }
        record_id = await _for_this_loop().settles.enqueue(row, urgent=urgent)
        if record_id is not None:
            return UsageRecord(id=record_id, **record)
    return await ledger.asettle(request_id=hold.request_id, usage=usage, cost=cost, **details)


async def release(
    hold: Hold, *, status: str = UsageStatus.FAILED, error: str = "", channel: str = "", latency_ms: int = 0
) -> UsageRecord:
    """Refund the whole hold (a failure before any output), at once: the caller's error answer waits for it."""
    return await settle(
        hold,
        usage=Usage(),
        cost=ZERO,
        status=status,
        error=error,
        channel=channel,
        latency_ms=latency_ms,
        urgent=True,
    )
