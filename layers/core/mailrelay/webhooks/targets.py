"""Where a webhook may be sent (against server-side request forgery).

In AWS only ``https://`` URLs are accepted, and a host whose addresses include a loopback, private,
link-local, carrier-grade NAT, multicast, reserved or unspecified address, or the instance-metadata
address (169.254.169.254, fd00:ec2::254), is refused: when the endpoint is registered and again at
every connection, on the addresses then resolved, and the connection goes to exactly one of those
checked addresses (so a name re-pointed after the check, DNS rebinding, gains nothing). The local
stack alone may allow ``http://`` to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolve = Callable[[str, int], list[str]]  # host, port -> addresses (raises OSError when unknown)

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): not "private" to Python


class UnsafeTarget(Exception):
    """The URL or what its host resolves to may not receive webhooks."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the checked address to connect to


def refusal_for(address: str) -> str | None:
    """Why this address may not receive webhooks (None: it may)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "the instance-metadata address"
    for kind, flag in (
        ("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local), ("a private", ip.is_private),
        ("a multicast", ip.is_multicast), ("a reserved", ip.is_reserved), ("an unspecified", ip.is_unspecified),
        ("a shared (carrier-grade NAT)", ip.version == 4 and ip in _SHARED),
    ):  # fmt: skip
        if flag:
            return f"{kind} address"
    return None


def check_url(url: str, *, allow_loopback_http: bool = False) -> str | None:
    """What is wrong with the URL itself, before any lookup (None: nothing)."""
    if len(url) > 2048:
        return "at most 2048 characters"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "an https:// URL"
    if parts.username or parts.password:
        return "no user name or password in the URL (authenticate with the signature)"
    if parts.fragment:
        return "no #fragment"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "a valid port"
    if parts.scheme == "http" and not (allow_loopback_http and _is_loopback_literal(parts.hostname)):
        return "an https:// URL (plain http is allowed only to 127.0.0.1 on the local stack)"
    return None


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def resolve_target(url: str, resolve: Resolve, *, allow_loopback_http: bool = False) -> Target:
    """The URL's host resolved and every address checked; raises UnsafeTarget naming what is refused."""
    problem = check_url(url, allow_loopback_http=allow_loopback_http)
    if problem:
        raise UnsafeTarget(f"the URL must be {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]  # an address literal is itself what is checked
    except ValueError:
        try:
            addresses = resolve(host, port)
        except OSError:
            raise UnsafeTarget(f"{host} does not resolve") from None
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    local_http = parts.scheme == "http" and allow_loopback_http
    for address in addresses:
        reason = refusal_for(address)
        if reason and not (local_http and ipaddress.ip_address(address).is_loopback):
            raise UnsafeTarget(f"{host} resolves to {address}, {reason}")
    return Target(url, parts.scheme, host, port, addresses[0])
