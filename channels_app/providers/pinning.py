"""The SSRF check at connect time, pinned against DNS rebinding.

An owner's base URL passed `urlcheck` when it was saved; a name can resolve elsewhere a moment
later. So every connection goes to an address that passed the check itself, re-resolved and
re-checked every 30 s; the Host header and the TLS server name keep the original name.
"""

from __future__ import annotations

import time

import httpx

from ..urlcheck import UnsafeUpstream, check_addresses, default_port, resolve
from .http11 import LeanTransport

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
    """Connects to the address that passed the SSRF check, not to whatever DNS says a moment later."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        address = pinned_address(url.scheme, host, default_port(url.scheme, url.port))
        if address != host:
            request.url = request.url.copy_with(host=address)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await super().handle_async_request(request)
