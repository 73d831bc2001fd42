"""A schema's refusal of one field, as a sentence in the reader's language.

Pydantic words its messages in English only; the JSON API answers in the site's language like the
pages do, so each error type the API's schemas can raise is worded here (pydantic's `ctx` gives the
limits). A type not listed gets a plain "not valid" rather than an English sentence in a Chinese answer.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

# Error types whose message needs no figures.
_PLAIN = {
    "missing": gettext_lazy("This field is required."),
    "string_type": gettext_lazy("Enter text."),
    "int_type": gettext_lazy("Enter a whole number."),
    "int_parsing": gettext_lazy("Enter a whole number."),
    "int_from_float": gettext_lazy("Enter a whole number."),
    "float_type": gettext_lazy("Enter a number."),
    "float_parsing": gettext_lazy("Enter a number."),
    "decimal_type": gettext_lazy("Enter a number."),
    "decimal_parsing": gettext_lazy("Enter a number."),
    "finite_number": gettext_lazy("Enter a finite number."),
    "bool_type": gettext_lazy("Enter true or false."),
    "bool_parsing": gettext_lazy("Enter true or false."),
    "list_type": gettext_lazy("Enter a list."),
    "dict_type": gettext_lazy("Enter an object."),
    "model_type": gettext_lazy("Enter an object."),
    "model_attributes_type": gettext_lazy("Enter an object."),
    "date_type": gettext_lazy("Enter a date, e.g. 2027-01-31."),
    "date_parsing": gettext_lazy("Enter a date, e.g. 2027-01-31."),
    "date_from_datetime_parsing": gettext_lazy("Enter a date, e.g. 2027-01-31."),
    "date_from_datetime_inexact": gettext_lazy("Enter a date, e.g. 2027-01-31."),
    "datetime_type": gettext_lazy("Enter a date and time, e.g. 2027-01-31T12:00:00Z."),
    "datetime_parsing": gettext_lazy("Enter a date and time, e.g. 2027-01-31T12:00:00Z."),
    "datetime_from_date_parsing": gettext_lazy("Enter a date and time, e.g. 2027-01-31T12:00:00Z."),
    "json_invalid": gettext_lazy("The body is not valid JSON."),
    "json_type": gettext_lazy("The body is not valid JSON."),
    "extra_forbidden": gettext_lazy("This field is not accepted."),
    "string_unicode": gettext_lazy("Enter text (valid UTF-8)."),
}


def message(error: dict) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as a sentence."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind in _PLAIN:
        return str(_PLAIN[kind])
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        limit = ctx.get({"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt"}.get(kind, "le"))
        texts = {
            "greater_than": _("Enter a number greater than %(limit)s."),
            "greater_than_equal": _("Enter a number of at least %(limit)s."),
            "less_than": _("Enter a number less than %(limit)s."),
            "less_than_equal": _("Enter a number of at most %(limit)s."),
        }
        return texts[kind] % {"limit": limit}
    if kind == "string_too_short":
        count = int(ctx.get("min_length", 1))
        if count == 1:
            return _("This field may not be empty.")
        return ngettext("Enter at least %(count)d character.", "Enter at least %(count)d characters.", count) % {
            "count": count
        }
    if kind == "string_too_long":
        count = int(ctx.get("max_length", 0))
        return ngettext("Enter at most %(count)d character.", "Enter at most %(count)d characters.", count) % {
            "count": count
        }
    if kind == "too_short":
        count = int(ctx.get("min_length", 1))
        return ngettext("Give at least %(count)d item.", "Give at least %(count)d items.", count) % {"count": count}
    if kind == "too_long":
        count = int(ctx.get("max_length", 0))
        return ngettext("Give at most %(count)d item.", "Give at most %(count)d items.", count) % {"count": count}
    if kind == "decimal_max_places":
        count = int(ctx.get("decimal_places", 0))
        return ngettext("Enter at most %(count)d decimal place.", "Enter at most %(count)d decimal places.", count) % {
            "count": count
        }
    if kind in ("decimal_max_digits", "decimal_whole_digits"):
        return _("The number has too many digits.")
    if kind in ("literal_error", "enum"):
        # pydantic's list reads "'a', 'b' or 'c'": its "or" is English.
        return _("Choose one of: %(choices)s.") % {"choices": str(ctx.get("expected", "")).replace(" or ", ", ")}
    if kind == "value_error":
        # Raised by the project's own validators (tokenhub/lib/text.py), already in the reader's language.
        return str(ctx.get("error", "")) or _("This value is not valid.")
    return _("This value is not valid.")
