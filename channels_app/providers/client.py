"""The one pooled HTTP client per event loop for every call to a provider (the relay, channel tests,
balance probes), over the pinned HTTP/1.1 transport."""

from __future__ import annotations

import asyncio
import weakref

import httpx
from django.conf import settings

from .pinning import PinnedTransport

USER_AGENT = "TokenHub"


class _Pool:
    """One event loop's connections to providers: the transport, and an httpx client over it."""

    def __init__(self):
        self.transport = PinnedTransport(
            max_connections=settings.TOKENHUB_UPSTREAM_MAX_CONNECTIONS, keepalive_expiry=30
        )
        # read: the wait for the first byte and between chunks; the relay checks the total time itself.
        timeout = httpx.Timeout(
            connect=settings.TOKENHUB_UPSTREAM_CONNECT_TIMEOUT,
            read=settings.TOKENHUB_UPSTREAM_READ_TIMEOUT,
            write=30.0,
            pool=10.0,
        )
        self.timeouts = timeout.as_dict()
        self.client = httpx.AsyncClient(
            timeout=timeout, transport=self.transport, follow_redirects=False, trust_env=False
        )


_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None or found.client.is_closed:
        found = _pools[loop] = _Pool()
    return found


def client() -> httpx.AsyncClient:
    """This event loop's pooled client (keep-alive); created lazily, never at import."""
    return _pool().client


def build_request(method: str, url: str, pool_key: object = None, **options) -> httpx.Request:
    """A request with this loop's timeouts, on connections kept for `pool_key` (a channel) alone.

    An owner's URL or key that httpx cannot even encode (a control character in the URL, a
    non-ASCII header) is that attempt's failure, raised as the transport's own refusal.
    """
    extensions = {"timeout": _pool().timeouts, "pool_key": pool_key}
    try:
        return httpx.Request(method, url, extensions=extensions, **options)
    except (httpx.InvalidURL, UnicodeEncodeError) as exc:
        # The type only: a UnicodeEncodeError's text would quote a character of the key.
        raise httpx.LocalProtocolError(f"refused: the URL or a header cannot be sent ({type(exc).__name__})") from None


async def post_streaming(url: str, headers: dict[str, str], content: bytes, pool_key: object = None) -> httpx.Response:
    """The relay's call: straight to this loop's transport, the response body still unread.

    The client's own layers (cookies, auth flows, redirects, URL merging) do nothing for these
    calls but cost about a tenth of the worker's time under load, so the relay skips them.
    `pool_key` (the channel id) keeps each channel's keep-alive connections its own.
    """
    pool = _pool()
    headers = {"user-agent": USER_AGENT, **headers}
    request = build_request("POST", url, pool_key, headers=headers, content=content)
    response = await pool.transport.handle_async_request(request)
    response.request = request
    return response
