from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def forget_cached_key(sender, instance: ApiKey, **kwargs) -> None:
    from .keys import forget

    forget(instance)
