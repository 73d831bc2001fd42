from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = gettext_lazy("Billing ledger")

    def ready(self) -> None:
        from . import signals  # noqa: F401
