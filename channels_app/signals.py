from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import routing
from .models import CatalogModel, Channel, ChannelKey, ChannelShare, ModelAlias


@receiver(post_save, sender=Channel)
@receiver(post_delete, sender=Channel)
@receiver(post_save, sender=ChannelShare)
@receiver(post_delete, sender=ChannelShare)
@receiver(post_save, sender=ChannelKey)
@receiver(post_delete, sender=ChannelKey)
@receiver(post_save, sender=CatalogModel)
@receiver(post_delete, sender=CatalogModel)
@receiver(post_save, sender=ModelAlias)
@receiver(post_delete, sender=ModelAlias)
def routing_changed(sender, **kwargs) -> None:
    routing.invalidate_on_commit()


@receiver(post_save, sender=get_user_model())
def owner_standing_changed(sender, created: bool, update_fields=None, **kwargs) -> None:
    """Routing leaves out inactive owners' channels: a save that may change is_active rebuilds it."""
    if not created and (update_fields is None or "is_active" in update_fields):
        routing.invalidate_on_commit()
