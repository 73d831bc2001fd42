from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class ChannelsConfig(AppConfig):
    name = "channels_app"
    verbose_name = gettext_lazy("Channels and model catalog")

    def ready(self) -> None:
        from . import signals  # noqa: F401
