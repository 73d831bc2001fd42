"""SSRF guard for owner-supplied base URLs.

By default only https URLs whose host resolves to public addresses pass.
Loopback/private targets (and plain http to them) pass only when the operator
lists them in TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS: host names, IPs or CIDRs
(matched against the resolved address) allow every port; `host:port`,
`[v6]:port` entries allow that port only. Checked when a channel is saved and
again when connecting, against DNS rebinding.

An IPv6 address that carries an IPv4 one (IPv4-mapped or -compatible, NAT64,
6to4, Teredo) is judged by the IPv4 it carries: `[::ffff:127.0.0.1]` and
`[64:ff9b::a9fe:a9fe]` reach loopback and the metadata service, though Python
calls some of them global.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: the IPv4 may sit anywhere in it


BASE_URL_MAX_LENGTH = 300  # Channel.base_url's column


class UnsafeUpstream(ValueError):
    """The URL may not be used as an upstream; the message says why."""


@dataclass(frozen=True)
class UrlVerdict:
    warning: str = ""  # e.g. the host does not resolve yet


@dataclass(frozen=True)
class _Allowance:
    name: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None  # None: every port


def _split_port(item: str) -> tuple[str, int | None]:
    """`[::1]:8100`, `127.0.0.1:8100`, `name:8100` -> (host, port); a bare IPv6 or CIDR has no port."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = item.rpartition(":")
    if sep and ":" not in host and port.isdigit():
        return host, int(port)
    return item, None


def _allowed_private() -> list[_Allowance]:
    allowed = []
    for item in settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS:
        host, port = _split_port(item.strip())
        try:
            allowed.append(_Allowance(network=ipaddress.ip_network(host, strict=False), port=port))
        except ValueError:
            allowed.append(_Allowance(name=host.lower(), port=port))
    return allowed


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo); [] if none."""
    if address.version == 4:
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1, judged as they are
        return [low32]
    if address in _IPV4_TRANSLATED:
        return [low32]
    if address in _NAT64:
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def _is_public(address: Address) -> bool:
    if address.version == 6 and address in _LOCAL_NAT64:
        return False
    carried = embedded_ipv4(address)
    if carried:
        return all(_is_public(inner) for inner in carried)
    return address.is_global and not address.is_multicast


def _is_allowed(host: str, address: Address, port: int, allowed: list[_Allowance]) -> bool:
    # The address as it is connected to: an IPv6 form that carries an allowed IPv4 (NAT64, 6to4…)
    # reaches some other host, not the one the operator listed.
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    for allowance in allowed:
        if allowance.port not in (None, port):
            continue
        if allowance.name is not None and allowance.name == host.lower():
            return True
        if allowance.network is not None and any(a in allowance.network for a in candidates):
            return True
    return False


def default_port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


def resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_addresses(host: str, addresses, scheme: str, port: int) -> None:
    allowed = _allowed_private()
    for address in addresses:
        if _is_public(address):
            if scheme != "https":
                raise UnsafeUpstream(f"{host} is a public host: use https, not {scheme}.")
            continue
        if _is_allowed(host, address, port, allowed):
            continue
        raise UnsafeUpstream(
            f"{host} resolves to {address}, a private or loopback address; the operator must list it "
            f"(or {host}:{port}) in TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS."
        )


def validate_base_url(url: str) -> UrlVerdict:
    """At save time. A host that does not resolve is accepted with a warning (checked again at connect)."""
    if len(url) > BASE_URL_MAX_LENGTH:
        raise UnsafeUpstream(f"The base URL must be at most {BASE_URL_MAX_LENGTH} characters.")
    if not url.isprintable() or " " in url:
        # urlsplit would quietly drop tabs and line breaks; the stored URL would still hold them.
        raise UnsafeUpstream("The base URL must not contain spaces, line breaks or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeUpstream("The base URL must be an http(s) URL with a host name.")
    if parts.username or parts.password:
        raise UnsafeUpstream("Put credentials in the key field, not in the base URL.")
    try:
        port = default_port(parts.scheme, parts.port)
    except ValueError:
        raise UnsafeUpstream("The base URL's port is not a number from 1 to 65535.") from None
    try:
        addresses = resolve(parts.hostname)
    except OSError:
        if parts.scheme != "https":
            raise UnsafeUpstream(f"{parts.hostname} does not resolve; unknown hosts must use https.") from None
        return UrlVerdict(
            warning=f"{parts.hostname} does not resolve from this server yet; it is checked at each connection."
        )
    check_addresses(parts.hostname, addresses, parts.scheme, port)
    return UrlVerdict()
