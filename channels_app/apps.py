from __future__ import annotations

from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Channels and model catalog"

    def ready(self) -> None:
        from . import signals  # noqa: F401
