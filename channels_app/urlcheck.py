"""SSRF guard for owner-supplied base URLs.

By default only https URLs whose host resolves to public addresses pass.
Loopback/private targets (and plain http to them) pass only when the operator
lists them in TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS (host names, IPs or CIDRs,
matched against the resolved address). Checked when a channel is saved and
again when connecting, against DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeUpstream(ValueError):
    """The URL may not be used as an upstream; the message says why."""


@dataclass(frozen=True)
class UrlVerdict:
    warning: str = ""  # e.g. the host does not resolve yet


def _allowed_private():
    names, networks = set(), []
    for item in settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.lower())
    return names, networks


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_addresses(host: str, addresses, scheme: str) -> None:
    names, networks = _allowed_private()
    for address in addresses:
        if _is_public(address):
            if scheme != "https":
                raise UnsafeUpstream(f"{host} is a public host: use https, not {scheme}.")
            continue
        if host.lower() in names or any(address in network for network in networks):
            continue
        raise UnsafeUpstream(
            f"{host} resolves to {address}, a private or loopback address; the operator must list it in "
            "TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS."
        )


def validate_base_url(url: str) -> UrlVerdict:
    """At save time. A host that does not resolve is accepted with a warning (checked again at connect)."""
    if not url.isprintable() or " " in url:
        # urlsplit would quietly drop tabs and line breaks; the stored URL would still hold them.
        raise UnsafeUpstream("The base URL must not contain spaces, line breaks or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeUpstream("The base URL must be an http(s) URL with a host name.")
    if parts.username or parts.password:
        raise UnsafeUpstream("Put credentials in the key field, not in the base URL.")
    try:
        addresses = resolve(parts.hostname)
    except OSError:
        if parts.scheme != "https":
            raise UnsafeUpstream(f"{parts.hostname} does not resolve; unknown hosts must use https.") from None
        return UrlVerdict(
            warning=f"{parts.hostname} does not resolve from this server yet; it is checked at each connection."
        )
    check_addresses(parts.hostname, addresses, parts.scheme)
    return UrlVerdict()
