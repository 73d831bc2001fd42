"""Money in the JSON API: a Decimal read as usual and written as a plain decimal string ("0.00000000", never "0E-8")."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer

EIGHT_PLACES = Decimal("0.00000001")
# The most a channel's owner may take of each call on it (the brief's 0–50 %): channels refuse more
# when set, billing when split.
MAX_OWNER_CUT = Decimal("0.5")


def plain(amount: Decimal) -> str:
    return format(Decimal(amount).quantize(EIGHT_PLACES), "f")


Money = Annotated[Decimal, PlainSerializer(plain, return_type=str)]
