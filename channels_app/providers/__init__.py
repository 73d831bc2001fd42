"""Outbound HTTP to providers: URLs, auth headers, balance APIs and the one pooled client.

The relay, channel tests and balance probes all go through here.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import httpx
from django.conf import settings

from .. import health
from ..models import Provider
from ..urlcheck import UnsafeUpstream, check_addresses, default_port, resolve
from .transport import LeanTransport

ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = "TokenHub"

# Operation -> path under the channel's base URL, per wire format.
OPENAI_PATHS = {
    "chat": "/chat/completions",
    "models": "/models",
    "embeddings": "/embeddings",
    "responses": "/responses",
}
ANTHROPIC_PATHS = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"}


def endpoint(provider: str, base_url: str, operation: str) -> str:
    base = base_url.rstrip("/")
    if provider == Provider.ANTHROPIC:
        # The Anthropic base URL is the bare origin; tolerate one that already ends in /v1.
        path = ANTHROPIC_PATHS[operation]
        return base[:-3] + path if base.endswith("/v1") else base + path
    return base + OPENAI_PATHS[operation]


def auth_headers(provider: str, api_key: str) -> dict[str, str]:
    if provider == Provider.ANTHROPIC:
        return {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
    return {"authorization": f"Bearer {api_key}"}


# --- The pooled client, one per event loop ------------------------------------------------


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


# --- SSRF check at connect time, pinned against DNS rebinding -----------------------------

_pins: dict[tuple[str, str, int], tuple[str, float]] = {}
PIN_SECONDS = 30.0


def pinned_address(scheme: str, host: str, port: int) -> str:
    """The checked address to connect to for `host` (re-resolved and re-checked every 30 s).

    The port is part of the check: an operator may allow one port of a private host only.
    """
    found = _pins.get((scheme, host, port))
    if found is not None and time.monotonic() - found[1] < PIN_SECONDS:
        return found[0]
    try:
        addresses = resolve(host)
    except OSError as exc:
        raise UnsafeUpstream(f"{host} does not resolve") from exc
    check_addresses(host, addresses, scheme, port)
    address = str(addresses[0])
    _pins[(scheme, host, port)] = (address, time.monotonic())
    return address


class PinnedTransport(LeanTransport):
    """Connects to the address that passed the SSRF check, not to whatever DNS says a moment later.

    The URL's host is swapped for the checked IP; the Host header and TLS server name (SNI and
    certificate check) keep the original name.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        address = pinned_address(url.scheme, host, default_port(url.scheme, url.port))
        if address != host:
            request.url = request.url.copy_with(host=address)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await super().handle_async_request(request)


# --- Classifying upstream failures ------------------------------------------------------------


def classify(status: int, body: str = "") -> str | None:
    """The health kind of an upstream answer, or None when it is fine or the caller's own fault (400)."""
    lowered = body.lower()
    if status in (401, 403) or "deactivated" in lowered or "invalid_api_key" in lowered:
        return health.AUTH
    if status == 402 or "insufficient_quota" in lowered or "credit balance is too low" in lowered:
        return health.QUOTA
    if status == 429:
        return health.RATE_LIMIT
    if status >= 500:
        return health.SERVER
    return None


def retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    message: str
    kind: str | None = None  # health kind on failure
    status: int | None = None
    retry_after: float | None = None


def _probe_body(provider: str, model: str) -> tuple[str, dict]:
    messages = [{"role": "user", "content": "ping"}]
    if provider == Provider.ANTHROPIC:
        return "messages", {"model": model, "max_tokens": 1, "messages": messages}
    return "chat", {"model": model, "max_tokens": 1, "messages": messages}


async def test_call(provider: str, base_url: str, api_key: str, model: str, pool_key: object = None) -> ProbeResult:
    """One minimal real call (1 output token) through the relay's own client code."""
    operation, body = _probe_body(provider, model)
    url = endpoint(provider, base_url, operation)
    started = time.perf_counter()
    try:
        request = build_request("POST", url, pool_key, json=body, headers=auth_headers(provider, api_key))
        response = await client().send(request)
    except UnsafeUpstream as exc:
        return ProbeResult(False, 0, f"refused: {exc}", health.CONNECT)
    except httpx.TimeoutException:
        return ProbeResult(False, int((time.perf_counter() - started) * 1000), "timed out", health.TIMEOUT)
    except httpx.TransportError as exc:
        return ProbeResult(False, 0, f"cannot connect: {type(exc).__name__}", health.CONNECT)
    latency = int((time.perf_counter() - started) * 1000)
    if response.is_success:
        return ProbeResult(True, latency, f"HTTP {response.status_code} in {latency} ms", status=response.status_code)
    kind = classify(response.status_code, response.text[:2000])
    return ProbeResult(
        False,
        latency,
        f"HTTP {response.status_code} from upstream",
        kind or health.SERVER,
        response.status_code,
        retry_after(response),
    )


@dataclass(frozen=True)
class BalanceResult:
    supported: bool
    balance_usd: Decimal | None = None
    message: str = ""


async def fetch_balance(provider: str, base_url: str, api_key: str, pool_key: object = None) -> BalanceResult:
    """The upstream account's remaining credit where the provider has an API for it."""
    base = base_url.rstrip("/")
    if provider == Provider.DEEPSEEK:
        url = (base[:-3] if base.endswith("/v1") else base) + "/user/balance"
    elif provider == Provider.OPENAI_COMPATIBLE:
        url = base + "/credits"  # OpenRouter-style credits endpoint
    else:
        return BalanceResult(False, message=f"{provider} has no balance API")
    try:
        response = await client().send(build_request("GET", url, pool_key, headers=auth_headers(provider, api_key)))
    except (UnsafeUpstream, httpx.HTTPError) as exc:
        return BalanceResult(True, message=f"balance query failed: {type(exc).__name__}")
    if response.status_code == 404 and provider == Provider.OPENAI_COMPATIBLE:
        return BalanceResult(False, message="this provider has no credits endpoint")
    if not response.is_success:
        return BalanceResult(True, message=f"balance query failed: HTTP {response.status_code}")
    try:
        return BalanceResult(True, _parse_balance(provider, response.content))
    except (KeyError, TypeError, ValueError, InvalidOperation, IndexError):
        return BalanceResult(True, message="balance answer not understood")


def _parse_balance(provider: str, content: bytes) -> Decimal:
    data = json.loads(content, parse_float=Decimal)
    if provider == Provider.DEEPSEEK:
        infos = data["balance_infos"]
        usd = next((i for i in infos if i.get("currency") == "USD"), infos[0])
        return Decimal(str(usd["total_balance"]))
    credits = data["data"]
    return Decimal(str(credits["total_credits"])) - Decimal(str(credits["total_usage"]))
