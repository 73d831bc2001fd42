"""The production ASGI stack (gunicorn + uvicorn workers) serves pages, static files and docs offline."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.servers import asgi_server

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_gunicorn_uvicorn_serves_health_pages_static_and_offline_api_docs():
    with asgi_server() as base_url:
        health = httpx.get(f"{base_url}/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True

        home = httpx.get(f"{base_url}/")
        assert home.status_code == 200
        for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', home.text):
            assert httpx.get(f"{base_url}{asset}").status_code == 200, asset

        docs = httpx.get(f"{base_url}/api/docs")
        assert docs.status_code == 200
        # Nothing is fetched from the internet: every asset is local.
        external = re.findall(r'(?:href|src)="(https?://[^"]+)"', docs.text)
        assert external == []
        for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', docs.text):
            assert httpx.get(f"{base_url}{asset}").status_code == 200, asset
        assert httpx.get(f"{base_url}/api/openapi.json").json()["info"]["title"] == "TokenHub API"
