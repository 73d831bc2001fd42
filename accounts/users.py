"""Changes to a user's standing that must reach every process at once (deactivation)."""

from __future__ import annotations

from .models import User


class UnknownUser(LookupError):
    pass


def set_active(username: str, active: bool) -> bool:
    """Deactivate or reactivate a user; returns False when it already was. Their keys stop
    (or work again) at once here and within TOKENHUB_KEY_LOCAL_SECONDS on every other process:
    saving is_active drops the cached identities (accounts/signals.py)."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f'No user "{username}".')
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    return True
