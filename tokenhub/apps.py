from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TokenHubConfig(AppConfig):
    name = "tokenhub"
    verbose_name = "TokenHub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)


class TokenHubAdminConfig(admin_apps.AdminConfig):
    """Django's admin with TokenHub's site: sign-in through the site's own two-step log-in."""

    default = False  # the tokenhub app's own config stays TokenHubConfig
    default_site = "tokenhub.admin_site.TokenHubAdminSite"
