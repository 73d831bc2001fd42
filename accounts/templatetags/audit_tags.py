from __future__ import annotations

from django import template

from accounts.audit import ACTION_LABELS
from accounts.audit import change_text as _change_text
from accounts.audit import shown_to_owner as _shown_to_owner

register = template.Library()


@register.filter
def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


@register.filter
def shown_to_owner(entry) -> tuple[str, str]:
    return _shown_to_owner(entry)


@register.filter
def change_text(entry) -> str:
    return _change_text(entry)
