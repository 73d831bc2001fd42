"""Usage -> Decimal cost, and the owner/platform split. No floats anywhere.

Prices are USD per 1M tokens. Rounding to 8 places happens once, in `cost_of`
(ROUND_HALF_EVEN); the hold estimate rounds up so it never under-reserves.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from tokenhub.lib.money import MAX_OWNER_CUT

CENT_FRACTION = Decimal("0.00000001")  # 8 decimal places
PER_TOKEN = Decimal(1_000_000)
ZERO = Decimal("0")


def to_decimal(value) -> Decimal:
    """Parse a price or amount without ever passing through float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a string or Decimal")
    return Decimal(str(value).strip())


def quantize(amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return amount.quantize(CENT_FRACTION, rounding=rounding)


def usd(amount: Decimal) -> str:
    """An amount as people read it: "$0.30", "$0.00", "$0.00012345" (never "0E-8")."""
    text = format(quantize(Decimal(amount)), "f")
    whole, _dot, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"${whole}.{fraction}"


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens, captured when a call is held so a later price change cannot touch it."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None  # None: reasoning tokens are billed as output

    def as_dict(self) -> dict[str, str | None]:
        return {k: (None if v is None else str(v)) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Prices:
        return cls(**{k: (None if v is None else to_decimal(v)) for k, v in data.items()})


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # not cached
    output_tokens: int = 0  # includes reasoning tokens unless billed apart
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, shown apart; billed apart only with a reasoning price


def cost_of(usage: Usage, prices: Prices) -> Decimal:
    raw = (
        usage.input_tokens * prices.input
        + usage.cache_read_tokens * (prices.cache_read if prices.cache_read is not None else prices.input)
        + usage.cache_write_tokens * (prices.cache_write if prices.cache_write is not None else prices.input)
    )
    if prices.reasoning is not None:
        visible_output = max(usage.output_tokens - usage.reasoning_tokens, 0)
        raw += visible_output * prices.output + usage.reasoning_tokens * prices.reasoning
    else:
        raw += usage.output_tokens * prices.output
    return quantize(raw / PER_TOKEN)


def estimate_max_cost(input_tokens_upper: int, max_output_tokens: int, prices: Prices) -> Decimal:
    """The most a call can cost: every input token at the dearest input rate, every output token at the dearest."""
    input_rate = max(p for p in (prices.input, prices.cache_write, prices.cache_read) if p is not None)
    output_rate = max(p for p in (prices.output, prices.reasoning) if p is not None)
    raw = input_tokens_upper * input_rate + max_output_tokens * output_rate
    return quantize(raw / PER_TOKEN, ROUND_CEILING)


def own_use_cost(cost: Decimal, owner_cut: Decimal) -> Decimal:
    """An owner's call through their own channel: the catalog price less the cut they would have
    earned (paying themselves a share would only move money in a circle, through the platform's fee)."""
    if not ZERO <= owner_cut <= MAX_OWNER_CUT:
        raise ValueError(f"owner cut must be between 0 and {MAX_OWNER_CUT}, got {owner_cut}")
    return quantize(cost * (1 - owner_cut))


def split(cost: Decimal, owner_cut: Decimal) -> tuple[Decimal, Decimal]:
    """(owner share, platform share), summing to exactly `cost`.

    A two-part largest-remainder allocation: the owner's share is rounded to
    8 places and the platform takes the exact remainder.
    """
    if not ZERO <= owner_cut <= MAX_OWNER_CUT:
        raise ValueError(f"owner cut must be between 0 and {MAX_OWNER_CUT}, got {owner_cut}")
    owner = quantize(cost * owner_cut)
    return owner, cost - owner
