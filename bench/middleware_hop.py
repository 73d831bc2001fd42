"""What the middleware chain costs an async view: requests/s through Django's ASGI handler.

The same async /v1 view (the relay's 404 for unknown endpoints) is driven three
ways, in-process on one event loop with no network, so only the handler's own
cost shows:
  1. the site stack with whitenoise's own sync-only middleware,
  2. the site stack with TokenHub's async front for whitenoise,
  3. tokenhub.asgi.application, which sends /v1 to a handler with no middleware.

    .venv/bin/python -m bench.middleware_hop [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789")
os.environ.setdefault("TOKENHUB_ENCRYPTION_KEYS", "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
os.environ["DEBUG"] = "0"


def http_scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def drive(app, count: int, path: str = "/v1/ping") -> float:
    scope = http_scope(path)
    never = asyncio.Event()
    statuses = set()

    def receiver():
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await never.wait()  # the client stays connected; Django cancels this when done

        return receive

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        await app(scope, receiver(), send)
    elapsed = time.perf_counter() - started
    assert statuses == {404}, statuses
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="No directory at")
    logging.disable(logging.WARNING)  # every request here is a 404, which Django logs
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler

    from tokenhub.asgi import application

    ours = list(settings.MIDDLEWARE)
    theirs = [
        m.replace("tokenhub.middleware.StaticFilesMiddleware", "whitenoise.middleware.WhiteNoiseMiddleware")
        for m in ours
    ]
    settings.MIDDLEWARE = theirs
    with_whitenoise = ASGIHandler()
    settings.MIDDLEWARE = ours
    with_front = ASGIHandler()
    rows = [
        ("site stack, whitenoise middleware", with_whitenoise),
        ("site stack, async whitenoise front", with_front),
        ("tokenhub.asgi (relay: no middleware)", application),
    ]
    for label, app in rows:
        asyncio.run(drive(app, 200))  # warm up
        rate = asyncio.run(drive(app, args.requests))
        print(f"{label:40s} {rate:8.0f} requests/s  {1e6 / rate:7.1f} µs/request")


if __name__ == "__main__":
    main()
