from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class RelayConfig(AppConfig):
    name = "relay"
    verbose_name = gettext_lazy("Relay (/v1)")
