"""The ASGI application: /v1 goes to the relay's own handler, without the site's middleware.

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
import json
from contextlib import closing

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from .call import new_request_id
from .errors import caller_format_of, error_body
from .settlement import finish_background

RELAY_PREFIX = "/v1"
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
        response = None
        try:
            response = await self.run_get_response(request)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            await self.send_response(response, send)
            state["finished"] = True
        except asyncio.CancelledError:
            if not state["abandoned"]:
                raise  # the server is stopping, not the client leaving
            handling.uncancel()
        finally:
            state["finished"] = True
            watcher.cancel()
            # A stream that was not sent to its end (or not started: an unstarted generator has no
            # `finally` to run) tells its pump the client is gone; after a full send this does nothing.
            abandon = getattr(response, "abandon", None)
            if abandon is not None:
                abandon()

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


class BodyTooLarge:
    """An ASGI `receive` that stops a request body at `limit` bytes, before it is buffered whole.

    Past the limit the application is told the client left (Django then drops the request without
    answering) and `exceeded` is set, so the caller of the application answers 413 itself.
    """

    def __init__(self, receive, limit: int):
        self.receive, self.limit = receive, limit
        self.received = 0
        self.exceeded = False

    async def __call__(self):
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                return {"type": "http.disconnect"}
        return message


def declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def body_limit(path: str) -> int:
    return settings.TOKENHUB_MAX_BODY_BYTES if is_relay_path(path) else settings.TOKENHUB_SITE_MAX_BODY_BYTES


async def send_too_large(scope, send, limit: int) -> None:
    """413 in the shape the path's callers read: the relay's caller format, the JSON API's, or text."""
    path = scope["path"]
    message = f"The request body is larger than the limit of {limit / 1_000_000:g} MB."
    content_type = b"application/json"
    extra = []
    if is_relay_path(path):
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())}
        body = json.dumps(error_body(caller_format_of(path, headers), 413, message, "request_too_large"))
        extra.append((b"x-request-id", new_request_id().encode()))
    elif path.startswith("/api/"):
        body = json.dumps({"error": {"code": "request_too_large", "message": message}})
    else:
        body, content_type = message, b"text/plain; charset=utf-8"
    payload = body.encode()
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(payload)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class TokenHubASGI:
    """Routes /v1 to the relay handler and everything else to the full site stack.

    Both get request bodies only up to their limit: a declared Content-Length over it is refused
    before a byte is read, and a body that grows past it while it arrives is cut there.
    """

    def __init__(self, site: ASGIHandler, relay: ASGIHandler):
        self.site = site
        self.relay = relay

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        if scope["type"] != "http":
            return await self.site(scope, receive, send)
        limit = body_limit(scope["path"])
        if declared_length(scope) > limit:
            return await send_too_large(scope, send, limit)
        limited = BodyTooLarge(receive, limit)
        app = self.relay if is_relay_path(scope["path"]) else self.site
        await app(scope, limited, send)
        if limited.exceeded:
            await send_too_large(scope, send, limit)

    async def lifespan(self, receive, send):
        """On shutdown (after the server stopped taking requests), settlements still running finish."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await finish_background(settings.TOKENHUB_SHUTDOWN_SETTLE_SECONDS)
                await send({"type": "lifespan.shutdown.complete"})
                return
