"""Asking a provider about a channel: a one-token test call, the upstream balance, and what an
upstream's error answer means for the channel's health."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import httpx

from .. import health
from ..urlcheck import UnsafeUpstream
from . import PROVIDERS
from .client import build_request, client
from .spec import ProviderSpec


def classify(spec: ProviderSpec, status: int, body: str = "") -> str | None:
    """The health kind of an upstream answer, or None when it is fine or the caller's own fault (400)."""
    lowered = body.lower()
    if status in (401, 403) or any(marker in lowered for marker in spec.auth_markers):
        return health.AUTH
    if status == 402 or any(marker in lowered for marker in spec.quota_markers):
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


async def test_call(provider: str, base_url: str, api_key: str, model: str, pool_key: object = None) -> ProbeResult:
    """One minimal real call (1 output token) through the relay's own client code."""
    spec = PROVIDERS.get(provider)
    if spec is None:  # a channel of a provider module since removed
        return ProbeResult(False, 0, f"unknown provider {provider!r}", health.CONNECT)
    operation, body = spec.probe(model)
    url = spec.endpoint(base_url, operation)
    started = time.perf_counter()
    try:
        request = build_request("POST", url, pool_key, json=body, headers=spec.auth_headers(api_key))
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
    kind = classify(spec, response.status_code, response.text[:2000])
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
    spec = PROVIDERS.get(provider)
    balance = spec.balance if spec else None
    if balance is None:
        return BalanceResult(False, message=f"{provider} has no balance API")
    headers = spec.auth_headers(api_key)
    try:
        response = await client().send(build_request("GET", balance.url(base_url), pool_key, headers=headers))
    except (UnsafeUpstream, httpx.HTTPError) as exc:
        return BalanceResult(True, message=f"balance query failed: {type(exc).__name__}")
    if response.status_code == 404 and balance.absent_on_404:
        return BalanceResult(False, message="this provider has no balance endpoint")
    if not response.is_success:
        return BalanceResult(True, message=f"balance query failed: HTTP {response.status_code}")
    try:
        return BalanceResult(True, balance.read(response.content))
    except (KeyError, TypeError, ValueError, InvalidOperation, IndexError, AttributeError, StopIteration):
        return BalanceResult(True, message="balance answer not understood")
