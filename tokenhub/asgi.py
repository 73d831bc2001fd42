"""ASGI entry point: gunicorn with uvicorn workers serves this in production."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")

site_application = get_asgi_application()

from relay.asgi import RelayASGIHandler, TokenHubASGI  # noqa: E402
from tokenhub.checks import exit_if_secrets_missing  # noqa: E402  (needs settings loaded)

exit_if_secrets_missing()

application = TokenHubASGI(site=site_application, relay=RelayASGIHandler())
