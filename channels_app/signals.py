from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import routing
from .models import CatalogModel, Channel, ChannelKey, ModelAlias


@receiver(post_save, sender=Channel)
@receiver(post_delete, sender=Channel)
@receiver(post_save, sender=ChannelKey)
@receiver(post_delete, sender=ChannelKey)
@receiver(post_save, sender=CatalogModel)
@receiver(post_delete, sender=CatalogModel)
@receiver(post_save, sender=ModelAlias)
@receiver(post_delete, sender=ModelAlias)
def routing_changed(sender, **kwargs) -> None:
    routing.invalidate_on_commit()
