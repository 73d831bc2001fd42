"""What the ledger refuses, with messages safe to show to the user, and the one rule for amounts."""

from __future__ import annotations

from decimal import Decimal

from ..pricing import quantize, usd


class LedgerError(Exception):
    """A refused money operation; the message is safe to show to the user."""


class InsufficientBalance(LedgerError):
    def __init__(self, need: Decimal, have: Decimal):
        self.need, self.have = need, have
        super().__init__(f"insufficient balance: need {usd(need)}, have {usd(have)}")


class SpendCapReached(LedgerError):
    def __init__(self, cap: Decimal, spent: Decimal, in_flight: Decimal, need: Decimal):
        self.cap, self.spent, self.in_flight, self.need = cap, spent, in_flight, need
        super().__init__(
            f"this key's spend cap is reached (counting calls in flight): cap {usd(cap)}, spent {usd(spent)}, "
            f"in flight {usd(in_flight)}, this call may cost up to {usd(need)}"
        )


class CodeRefused(LedgerError):
    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class LedgerBehind(Exception):
    """This worker's settlements are not being written as fast as calls finish: no new call starts."""


def money(amount) -> Decimal:
    """`amount` as a Decimal, refusing more than 8 decimal places."""
    amount = Decimal(amount) if not isinstance(amount, Decimal) else amount
    if amount != quantize(amount):
        raise ValueError(f"amount {amount} has more than 8 decimal places")
    return amount
