"""Readiness of the parts a request depends on: database, cache, Celery broker."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection


def _error(exc: Exception) -> str:
    # The class name and message only: no URL (it may carry a password).
    return f"{type(exc).__name__}: {exc}"[:200]


def database_state() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "vendor": connection.vendor}


def cache_state() -> dict:
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    probe_key, probe_value = "healthz:probe", uuid.uuid4().hex
    try:
        cache.set(probe_key, probe_value, timeout=10)
        ok = cache.get(probe_key) == probe_value
    except Exception as exc:
        return {"ok": False, "backend": backend, "error": _error(exc)}
    if ok:
        return {"ok": True, "backend": backend}
    from tokenhub import cache as redis_cache  # it serves on while Redis is down: say it is down

    error = "unreachable" if redis_cache.unavailable() else "read-back mismatch"
    return {"ok": False, "backend": backend, "error": error}


def broker_state() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "eager"}
    from tokenhub.celery import app

    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return {"ok": False, "mode": "broker", "error": _error(exc)}
    return {"ok": True, "mode": "broker"}


def overall_state() -> dict:
    parts = {"database": database_state(), "cache": cache_state(), "broker": broker_state()}
    return {"ok": all(part["ok"] for part in parts.values()), **parts}
