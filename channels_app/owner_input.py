"""What a channel owner may type, checked where it enters (form, API, `add_channel`, admin).

Owners are strangers and their values end up in headers, URLs, JSON bodies and PostgreSQL text
(which refuses NUL with a 500). The transport checks the bytes again before they reach a wire;
these checks give the owner a field error instead.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

PRIORITY_RANGE = (-100, 100)  # set by staff only: see routing.py
WEIGHT_RANGE = (1, 100)
NAME_MAX_LENGTH = 100
MODEL_NAME_MAX_LENGTH = 200  # as the catalog's names
MODELS_MAX = 1000
KEY_MAX_LENGTH = 1000  # it becomes a header line

# Controls (NUL, CR, LF…), format characters (bidi overrides, zero-width), lone surrogates and
# line/paragraph separators: none belongs in a name, and each can hide or break something.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text)


def validate_text(value: str) -> None:
    if not isinstance(value, str) or has_control_characters(value):
        raise ValidationError(
            _("This text must not contain control characters or line breaks."), code="control_characters"
        )


def validate_name(value: str) -> None:
    if not isinstance(value, str) or has_control_characters(value):
        raise ValidationError(
            _("The name must not contain control characters or line breaks."), code="control_characters"
        )
    if len(value) > NAME_MAX_LENGTH:
        message = _("The name must be at most %(count)s characters.") % {"count": NAME_MAX_LENGTH}
        raise ValidationError(message, code="max_length")


def validate_upstream_key(key: str) -> None:
    # Keys become header values: visible ASCII only. The message never quotes the key.
    if not key or not all("\x21" <= char <= "\x7e" for char in key):
        raise ValidationError(
            _("An upstream key is visible ASCII only: no spaces, line breaks, control or non-ASCII characters."),
            code="key_characters",
        )
    if len(key) > KEY_MAX_LENGTH:
        message = _("An upstream key is at most %(count)s characters.") % {"count": KEY_MAX_LENGTH}
        raise ValidationError(message, code="max_length")


def validate_model_names(names) -> None:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValidationError(_("The model list must be a list of names."), code="model_names")
    if len(names) > MODELS_MAX:
        raise ValidationError(
            _("A channel serves at most %(count)s models.") % {"count": MODELS_MAX}, code="max_length"
        )
    for name in names:
        if has_control_characters(name):
            message = _("Model name %(name)s holds control characters.") % {"name": repr(name)}
            raise ValidationError(message, code="control_characters")
        if len(name) > MODEL_NAME_MAX_LENGTH:
            message = _("A model name is at most %(count)s characters.") % {"count": MODEL_NAME_MAX_LENGTH}
            raise ValidationError(message, code="max_length")


def validate_model_mapping(mapping) -> None:
    if not isinstance(mapping, dict):
        raise ValidationError(_('The mapping must be {"caller name": "upstream name"}.'), code="model_mapping")
    if len(mapping) > MODELS_MAX:
        raise ValidationError(_("A mapping has at most %(count)s entries.") % {"count": MODELS_MAX}, code="max_length")
    for caller, upstream in mapping.items():
        if not isinstance(upstream, str) or not caller.strip() or not upstream.strip():
            message = _("Mapping %(name)s needs an upstream model name.") % {"name": repr(caller)}
            raise ValidationError(message, code="model_mapping")
        if has_control_characters(caller) or has_control_characters(upstream):
            message = _("Mapping %(name)s holds control characters.") % {"name": repr(caller)}
            raise ValidationError(message, code="control_characters")
        if max(len(caller), len(upstream)) > MODEL_NAME_MAX_LENGTH:
            message = _("A model name is at most %(count)s characters.") % {"count": MODEL_NAME_MAX_LENGTH}
            raise ValidationError(message, code="max_length")


def validate_in_range(value: int, bounds: tuple[int, int], what: str) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        message = RANGE_MESSAGES[what] % {"low": low, "high": high}
        raise ValidationError(message, code="range")


RANGE_MESSAGES = {
    "weight": gettext_lazy("The weight must be a whole number from %(low)s to %(high)s."),
    "priority": gettext_lazy("The priority must be a whole number from %(low)s to %(high)s."),
}
