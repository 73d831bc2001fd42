"""Text from strangers that becomes a name, a label or a filter: printable, no control characters.

PostgreSQL refuses NUL in text (a 500 if it reaches a query), and control or invisible format
characters (CR/LF, bidi overrides, zero-width spaces) let one name pass for another on a page or
in a log line. Both apps' schemas and forms use these, so every name field refuses the same set.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from pydantic import AfterValidator, Field

# Zero-width joiner: inside emoji sequences, so a name may still hold 👩‍💻.
_ALLOWED_FORMAT = {"\u200d"}


def unprintable(value: str) -> str | None:
    """The first character that may not appear in a name, or None."""
    for char in value:
        category = unicodedata.category(char)
        if (category[0] == "C" and char not in _ALLOWED_FORMAT) or category in ("Zl", "Zp"):
            return char
    return None


def check_printable(value: str) -> str:
    bad = unprintable(value)
    if bad is not None:
        raise ValueError(
            _("Must be printable text: %(char)s (a control or invisible character) is not allowed.")
            % {"char": f"U+{ord(bad):04X}"}
        )
    return value


def validate_printable(value: str) -> None:
    """The same rule for Django forms and model fields."""
    try:
        check_printable(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="unprintable") from None


def check_aware(value: datetime | None) -> datetime | None:
    """An aware datetime, in UTC: PostgreSQL takes offsets up to ±15:59 only (ISO 8601 allows ±23:59)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(_("Include a timezone, e.g. 2027-01-31T12:00:00Z or +02:00."))
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(_("The date is out of range.")) from None


def PrintableText(min_length: int = 0, max_length: int | None = None):
    """A printable string for a pydantic/ninja schema field."""
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length),
        AfterValidator(check_printable),
    ]


# A datetime that must carry its offset: a naive one is ambiguous across the caller's time zone.
AwareDatetime = Annotated[datetime, AfterValidator(check_aware)]
