from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey, User


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def forget_cached_key(sender, instance: ApiKey, **kwargs) -> None:
    # On create this also drops a "no such key" marker left for the new key's hash.
    from .keys import forget

    forget(instance)
    # As for users below: an admin's edit is in a transaction, and another worker could cache the old
    # row (an expiry, a cap, the models allowed) before it commits.
    transaction.on_commit(lambda: forget(instance))


@receiver(post_save, sender=User)
def forget_cached_keys_of_user(sender, instance: User, update_fields=None, **kwargs) -> None:
    """Cached key identities carry the user's active flag: a save that may change it drops them."""
    from .keys import forget_user

    if update_fields is not None and "is_active" not in update_fields:
        return  # e.g. last_login on every log-in
    forget_user(instance.pk)
    # Inside a transaction (the admin's), another worker could re-cache the old row before the
    # commit; dropping again after the commit closes that gap.
    transaction.on_commit(lambda: forget_user(instance.pk))
