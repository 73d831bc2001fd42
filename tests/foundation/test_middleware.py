"""No middleware may force a thread hop on the async /v1 path."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.utils.module_loading import import_string


def test_every_middleware_is_async_capable():
    for path in settings.MIDDLEWARE:
        assert getattr(import_string(path), "async_capable", False), f"{path} is sync-only"


def test_loading_the_async_chain_adapts_nothing(caplog, settings):
    settings.DEBUG = True  # Django logs each adaptation only in DEBUG
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    adapted = [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]
    assert adapted == []
