from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")

application = get_wsgi_application()

from tokenhub.checks import exit_if_secrets_missing  # noqa: E402  (needs settings loaded)

exit_if_secrets_missing()
