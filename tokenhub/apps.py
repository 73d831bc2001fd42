from __future__ import annotations

from django.apps import AppConfig


class TokenHubConfig(AppConfig):
    name = "tokenhub"
    verbose_name = "TokenHub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
