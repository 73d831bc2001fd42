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

import asyncio
from contextlib import closing

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

RELAY_PREFIX = "/v1"
SHUTDOWN_SETTLE_SECONDS = 20.0  # within gunicorn's graceful_timeout (30 s)
_resolved: dict = {}


class RelayASGIHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain and without per-request thread work.

    Django's own handler wraps every request in a ThreadSensitiveContext (a fresh one-thread
    executor per request) and sends request_started/request_finished, whose receivers are sync
    (closing DB connections, caches, resetting the urlconf): two thread hops per request. The relay
    needs none of it: its database work runs in worker threads that hand their pooled connection
    back themselves, and the cache client is shared per process.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"the relay serves HTTP only, not {scope['type']}")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                return

            await self.respond_unless_abandoned(request, receive, send)
            # Not response.close(): it would send request_finished, whose receivers are the sync
            # clean-ups skipped above; relay responses hold no other resources.

    async def respond_unless_abandoned(self, request, receive, send) -> None:
        """Run the view and send its response; a client that disconnects cancels both, as in Django.

        Django does this with a TaskGroup ended by an exception raised on every request (of a class
        it defines per request); the exception group's traceback holds the request's frames in a
        reference cycle, which left about 60 objects a call to the garbage collector: a ~1 ms
        collection every ~50 ms at one caller. Here a watcher task cancels this one on disconnect.
        """
        handling = asyncio.current_task()
        state = {"finished": False, "abandoned": False}

        async def watch() -> None:
            message = await receive()
            if message["type"] == "http.disconnect" and not state["finished"]:
                state["abandoned"] = True
                handling.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            response = await self.run_get_response(request)
            await self.send_response(response, send)
            state["finished"] = True
        except asyncio.CancelledError:
            if not state["abandoned"]:
                raise  # the server is stopping, not the client leaving
            handling.uncancel()
        finally:
            state["finished"] = True
            watcher.cancel()

    def resolve_request(self, request):
        """The relay's few paths resolve once per process (Django's resolver walks every pattern)."""
        match = _resolved.get(request.path_info)
        if match is None:
            match = super().resolve_request(request)
            if match.url_name != "not_served" and len(_resolved) < 64:
                _resolved[request.path_info] = match
        request.resolver_match = match
        return match

    def make_view_atomic(self, view):
        """The relay's views manage their own transactions (ATOMIC_REQUESTS never applies to them);
        Django's check walks every database connection on each request."""
        return view

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
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        return await self.site(scope, receive, send)

    async def lifespan(self, receive, send):
        """On shutdown (after the server stopped taking requests), settlements still running finish."""
        from relay.pipeline import finish_background

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await finish_background(SHUTDOWN_SETTLE_SECONDS)
                await send({"type": "lifespan.shutdown.complete"})
                return
