from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = gettext_lazy("Accounts and API keys")

    def ready(self) -> None:
        from . import signals  # noqa: F401
