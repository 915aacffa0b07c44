"""A tiny HTTP endpoint for the container and the load balancer.

GET /ready    200 while accepting connections, 503 once draining (the NLB stops sending new ones)
GET /live     200 while the process runs (container HEALTHCHECK)
GET /metrics  the process's counters as JSON
With PROXY protocol on, a load balancer sends its header on health-check connections too ("the proxy
protocol header is also included in health check connections", Elastic Load Balancing): aiosmtpd's
parser reads it first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiosmtpd.proxy_protocol import get_proxy

from smtp_bridge.observability import Metrics

READ_TIMEOUT_SECONDS = 5


class ReadinessServer:
    def __init__(self, is_ready: Callable[[], bool], metrics: Metrics, *, proxy_protocol: bool = False) -> None:
        self.is_ready = is_ready
        self.metrics = metrics
        self.proxy_protocol = proxy_protocol
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(self._read_request(reader), READ_TIMEOUT_SECONDS)
            status, body = self._answer(request)
            head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> str:
        if self.proxy_protocol and not await get_proxy(reader):
            raise ValueError("no valid PROXY header")
        head = await reader.readuntil(b"\r\n\r\n")
        return head.split(b"\r\n", 1)[0].decode("ascii", "replace")

    def _answer(self, request_line: str) -> tuple[str, bytes]:
        parts = request_line.split()
        path = parts[1] if len(parts) >= 2 else ""
        if path == "/ready":
            ready = self.is_ready()
            return ("200 OK" if ready else "503 Service Unavailable"), json.dumps({"ready": ready}).encode()
        if path == "/live":
            return "200 OK", b'{"live": true}'
        if path == "/metrics":
            return "200 OK", json.dumps(self.metrics.snapshot(), sort_keys=True).encode()
        return "404 Not Found", b'{"error": "not found"}'
