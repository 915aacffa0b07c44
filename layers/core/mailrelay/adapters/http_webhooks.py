"""HTTP for webhooks: name resolution, and a POST over a connection to one already-checked address.

The TLS handshake still names and verifies the URL's host (SNI, certificate and host name), and the
request carries its Host header; only the TCP connection is pinned to the address that was checked.

The timeout bounds the whole post, not each socket operation (which a receiver answering a byte at a time
could stretch without end): at the deadline the connection is shut down under the waiting request. An
endpoint's posting slot is held for that long and a little more, so the bound per endpoint holds.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from functools import cache
from urllib.parse import urlsplit

from mailrelay.ports import PostResult
from mailrelay.webhooks.targets import Target

_MAX_REPLY = 64 * 1024  # the body of a reply is not used; read a little so the connection ends cleanly


def resolve_addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Pinned(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float, expired: threading.Event) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target
        self.expired = expired

    def connect(self) -> None:
        self.sock = socket.create_connection((self.target.address, self.target.port), self.timeout)
        if self.target.scheme == "https":
            self.sock = _tls().wrap_socket(self.sock, server_hostname=self.target.host)
        if self.expired.is_set():  # the deadline passed while connecting: nothing was there to cut
            raise TimeoutError("no connection within the timeout")


class HttpWebhookPoster:
    def post(self, target: Target, headers: dict[str, str], body: bytes, timeout: float) -> PostResult:
        started = time.monotonic()
        parts = urlsplit(target.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        expired = threading.Event()
        connection = _Pinned(target, timeout, expired)
        deadline = threading.Timer(timeout, _cut, args=(connection, expired))
        deadline.daemon = True
        deadline.start()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(_MAX_REPLY)
            return PostResult(response.status, time.monotonic() - started)
        except (OSError, http.client.HTTPException) as exc:
            timed_out = expired.is_set() or isinstance(exc, TimeoutError | socket.timeout)
            kind = "timed out" if timed_out else type(exc).__name__
            return PostResult(None, time.monotonic() - started, f"{kind}: {exc}"[:300])
        finally:
            deadline.cancel()
            connection.close()


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The post's deadline: shut the connection down under the request still waiting on it."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
