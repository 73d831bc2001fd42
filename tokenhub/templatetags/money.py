from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def price(value) -> str:
    """A catalog price, one way everywhere: at least two decimals, at most four, "—" when unknown
    ($1.00, $0.28, $0.075, $0.0375)."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value).quantize(Decimal("0.0001"))
    text = format(amount, "f").rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


@register.filter
def thousands(value) -> str:
    """128000 -> 128,000 (the context window, a token count), grouped as the page's language does."""
    if value in (None, ""):
        return "—"
    return number_format(int(value), force_grouping=True)
