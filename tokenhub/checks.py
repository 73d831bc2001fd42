"""Refuse to start a production process without its secrets.

Checked when the web app or a Celery worker starts (and by `manage.py check`),
never at settings import, so `collectstatic` and `generate_encryption_key` run
without them.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core import checks


def missing_secrets() -> list[str]:
    """Names of the required secret variables that are unset (none in DEBUG)."""
    if settings.DEBUG:
        return []
    missing = []
    if not settings.SECRET_KEY_FROM_ENV:
        missing.append("SECRET_KEY")
    if not settings.TOKENHUB_ENCRYPTION_KEYS:
        missing.append("TOKENHUB_ENCRYPTION_KEYS")
    return missing


def refusal_message(missing: list[str]) -> str:
    names = " and ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"TokenHub refuses to start: {names} {verb} not set (required when DEBUG is off; "
        "see .env.example; `python manage.py generate_encryption_key` makes an encryption key)."
    )


def exit_if_secrets_missing() -> None:
    missing = missing_secrets()
    if missing:
        print(refusal_message(missing), file=sys.stderr)
        raise SystemExit(3)


@checks.register("secrets")
def check_secrets(app_configs=None, **kwargs):
    missing = missing_secrets()
    if not missing:
        return []
    return [checks.Error(refusal_message(missing), id="tokenhub.E001")]
