from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_reports_every_part(settings):
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["database"]["ok"] and body["cache"]["ok"] and body["broker"]["ok"]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        assert body["broker"]["mode"] == "eager"


@pytest.mark.services
def test_healthz_uses_postgres_redis_and_the_real_broker():
    body = Client().get("/healthz").json()
    assert body["database"]["vendor"] == "postgresql"
    assert body["cache"]["backend"] == "SharedPoolRedisCache"
    assert body["broker"] == {"ok": True, "mode": "broker"}


@pytest.mark.services
def test_healthz_is_503_when_redis_is_down(settings):
    # A real Redis client pointed at a port nothing listens on: no mocking.
    dead = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.CELERY_BROKER_URL = dead
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["database"]["ok"] is True
    assert body["cache"]["ok"] is False and "ConnectionError" in body["cache"]["error"]
    assert body["broker"]["ok"] is False
    assert "redis://" not in response.content.decode()  # no URL (it could carry a password)
