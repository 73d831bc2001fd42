"""The batched path's two PostgreSQL statements: many calls' holds, or settlements, in one statement.

The ledger's rules hold inside a batch: each call is its own ledger transaction whose entries sum to
zero (checked by `tokenhub_ledger_check` here, and by the entries' trigger whoever writes); the debit
of a balance is a conditional UPDATE; balance rows are locked in one order (users' balances, then
their holds, by code, then keys), as the per-call path does.

A key's open holds count against its spend cap (`reserved_usd`) in the same statement, by the same
rule as the balance: all of a key's holds in the batch fit its cap, or none go on. Rows a statement
cannot take (a short balance, a cap the batch would pass, accounts not created yet, a hold already
closed) are left out of its answer, and those calls take the per-call path.
"""

import re

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
        upstream_usd numeric,
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
        excess_usd, upstream_usd, latency_ms, status, estimated, error, transaction_id, created_at)
    SELECT request_id, user_id, api_key_id, model, channel, owner_id, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, owner_cut_usd, platform_usd,
        excess_usd, upstream_usd, latency_ms, status, estimated, error, txn_id, now()
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
    # (No comma in these statements is inside a string literal: the spaces around them can go.)
    return re.sub(r" ?, ?", ",", " ".join(" ".join(lines).split()))


HOLDS_SQL, SETTLES_SQL = _compact(HOLDS_SQL), _compact(SETTLES_SQL)
