"""The ASGI entry: the /v1 relay gets a handler without the site's middleware.

Django's built-in middleware are async-capable only on the surface: each
`process_request`/`process_response` of a MiddlewareMixin runs through
`sync_to_async`, i.e. a thread hop per middleware per request (about two
dozen for the site's stack, measured by bench/middleware_hop.py). The relay
needs none of them (no cookies, sessions, CSRF or templates: it authenticates
sk-hub keys itself), so /v1 requests go to a handler whose chain is the async
view alone.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

RELAY_PREFIX = "/v1"


class RelayASGIHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


def is_relay_path(path: str) -> bool:
    return path == RELAY_PREFIX or path.startswith(RELAY_PREFIX + "/")


class TokenHubASGI:
    """Routes /v1 to the relay handler and everything else to the full site stack."""

    def __init__(self, site: ASGIHandler, relay: ASGIHandler):
        self.site = site
        self.relay = relay

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and is_relay_path(scope["path"]):
            return await self.relay(scope, receive, send)
        return await self.site(scope, receive, send)
