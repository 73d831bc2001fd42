"""The base of TokenHub's manage.py commands: a failure is one clear line and a non-zero exit.

A database, Redis or network failure would otherwise end an operator's command in a traceback;
here it becomes `CommandError: <what failed>: <why>` (exit 1), and Ctrl-C exits 130 without one.
`--traceback` still shows the whole story.
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from redis.exceptions import RedisError

SERVICE_FAILURES = {DatabaseError: "database", RedisError: "Redis", OSError: "system"}


class OperatorCommand(BaseCommand):
    # True for commands that change what the running nodes cache (key identities, the routing
    # snapshot): they need the nodes' Redis, reachable, or they would report a change nobody sees.
    shares_state = False

    def execute(self, *args, **options):
        if self.shares_state:
            return self._with_shared_cache(*args, **options)
        return self._execute(*args, **options)

    def _with_shared_cache(self, *args, **options):
        from django.conf import settings

        from tokenhub import cache

        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and not settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is not set: the running nodes would not hear of this change (they would keep "
                "their cached copies); run it with the nodes' REDIS_URL"
            )
        with cache.strict():
            return self._execute(*args, **options)

    def _execute(self, *args, **options):
        # The connection pool logs each failed attempt and then raises a bare timeout: keep the last
        # attempt's reason for the one line instead of a screenful of warnings.
        pool_log, reasons = logging.getLogger("psycopg.pool"), _LastReason()
        pool_log.addHandler(reasons)
        pool_log.propagate = False
        from accounts import audit

        try:
            with audit.acting_as(audit.command_origin(self._name())):
                return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError("interrupted", returncode=130) from None
        except CommandError:
            raise
        except tuple(SERVICE_FAILURES) as exc:
            if options.get("traceback"):
                raise
            why = f" ({reasons.last})" if reasons.last else ""
            raise CommandError(f"{_service(exc)} error: {_first_line(exc)}{why}") from exc
        finally:
            pool_log.removeHandler(reasons)
            pool_log.propagate = True

    def _name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]


class _LastReason(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.last = _first_line(Exception(message.split("connection failed: ", 1)[-1]))


def _service(exc: Exception) -> str:
    return next(name for kind, name in SERVICE_FAILURES.items() if isinstance(exc, kind))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
