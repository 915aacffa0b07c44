"""Who may connect and how often: allowlisted networks, connection caps, failed-AUTH throttling."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter, deque
from collections.abc import Callable

from smtp_bridge.settings import AllowedNetwork, Network


def parse_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def allowlisted_client(address: str | None, networks: tuple[AllowedNetwork, ...]) -> str | None:
    """The client id bound to the most specific allowlisted network holding ``address``."""
    ip = parse_ip(address)
    if ip is None:
        return None
    matches = [n for n in networks if ip.version == n.cidr.version and ip in n.cidr]
    if not matches:
        return None
    return max(matches, key=lambda n: n.cidr.prefixlen).client_id


def in_networks(address: str | None, networks: tuple[Network, ...]) -> bool:
    ip = parse_ip(address)
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


class ConnectionCaps:
    """Open sessions, in total and per client address (after PROXY: the real client's)."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total_limit = total
        self.per_client_limit = per_client
        self.total = 0
        self.per_client: Counter[str] = Counter()

    def admit(self, client: str) -> bool:
        if self.total >= self.total_limit or self.per_client[client] >= self.per_client_limit:
            return False
        self.total += 1
        self.per_client[client] += 1
        return True

    def release(self, client: str) -> None:
        self.total -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]


class AuthThrottle:
    """Failed AUTH attempts per client address in a sliding window; over the limit, each failure ends the session."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def failed(self, client: str) -> int:
        """Record a failure; returns how many are now in the window (to scale the delay)."""
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            oldest = next(iter(self._failures))
            del self._failures[oldest]
        return len(failures)
