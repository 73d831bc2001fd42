"""The ledger: the one writer of money.

Every balance change is one `Transaction` whose entries sum to zero, posted in one database
transaction, with the cached balances (a user's spendable balance, their holds in flight) changed in
it too, debits by a conditional UPDATE that must match one row, so concurrent calls never overdraw.
PostgreSQL enforces the zero sum and append-only entries itself (triggers, billing migration 0008),
whoever writes. Every operation that can be retried is idempotent: by request id, by (user, day), by
code, or by a compare-and-set on a status column.

Two write paths, one set of rules:
- the per-call path (`calls`, over `posting` and the plain SQL in `statements`): one transaction per
  operation, on every database; the authority, which explains refusals and creates missing accounts;
- the batched path (`batched`, over `batcher` and the PostgreSQL statements in `batch_statements`):
  the relay's holds and settlements, many calls a statement, falling back to the per-call path for
  whatever a batch cannot do.
`credits` (grants, check-ins, redemption codes) and `earnings` (owners' earnings and payouts) post
through `posting`. Callers import from here: `from billing import ledger`, `ledger.batched.hold(…)`.
"""

from . import batched
from .accounts import (
    balance_of,
    derived_balance,
    earnings_of,
    owner_account,
    payout_account,
    platform_account,
    user_account,
)
from .calls import (
    SettlementFigures,
    ahold,
    arelease,
    asettle,
    hold,
    release,
    release_stale_holds,
    settle,
    settlement_figures,
    usage_record_values,
)
from .credits import checkin, grant, normalise_code, redeem
from .earnings import PayoutNotAllowed, decide_payout, move_earnings_to_balance, payout_refusal, request_payout
from .errors import CodeRefused, InsufficientBalance, LedgerBehind, LedgerError, SpendCapReached, money

__all__ = [
    "CodeRefused",
    "InsufficientBalance",
    "LedgerBehind",
    "LedgerError",
    "PayoutNotAllowed",
    "SettlementFigures",
    "SpendCapReached",
    "ahold",
    "arelease",
    "asettle",
    "balance_of",
    "batched",
    "checkin",
    "decide_payout",
    "derived_balance",
    "earnings_of",
    "grant",
    "hold",
    "money",
    "move_earnings_to_balance",
    "normalise_code",
    "owner_account",
    "payout_account",
    "payout_refusal",
    "platform_account",
    "redeem",
    "release",
    "release_stale_holds",
    "request_payout",
    "settle",
    "settlement_figures",
    "usage_record_values",
    "user_account",
]
