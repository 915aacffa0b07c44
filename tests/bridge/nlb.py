"""A test front that forwards TCP the way the template's Network Load Balancer does.

Two target-group configurations, each as AWS documents it:
- ``preserve_client_ip`` (what the template deploys: ``preserve_client_ip.enabled=true``, PROXY off):
  the bytes pass unchanged in both directions and the target sees the client's own address. On
  loopback the front shows this by connecting to the target *from* the client's address.
- ``proxy_v2`` (``proxy_protocol_v2.enabled=true``): the header is sent only together with the
  client's first payload (``proxy_protocol_v2.client_to_server.header_placement`` defaults to
  ``on_first_ack_with_payload``, and only AWS Support can change it), so a protocol in which the
  server speaks first waits for a header that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from typing import Literal

from tests.bridge.conftest import HOST, proxy_v2_header

Mode = Literal["preserve_client_ip", "proxy_v2"]


class NlbFront:
    def __init__(self, target_port: int, mode: Mode, listener_port: int = 587) -> None:
        self.target_port = target_port
        self.mode = mode
        self.listener_port = listener_port  # what the PROXY header names as the destination port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> NlbFront:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, HOST, 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _open_target(self, client_ip: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.mode == "preserve_client_ip":
            # The target sees the client's address: connect from it (any 127/8 address is local).
            return await asyncio.open_connection(HOST, self.target_port, local_addr=(client_ip, 0))
        return await asyncio.open_connection(HOST, self.target_port)

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        client_ip, client_port = client_writer.get_extra_info("peername")[:2]
        try:
            target_reader, target_writer = await self._open_target(client_ip)
        except OSError:
            client_writer.close()
            return
        if self.mode == "proxy_v2":
            first = await client_reader.read(65536)  # nothing goes to the target before the client speaks
            if not first:
                target_writer.close()
                client_writer.close()
                return
            source = str(ipaddress.ip_address(client_ip))
            target_writer.write(proxy_v2_header(source, client_port, "10.0.0.1", self.listener_port) + first)
        await asyncio.gather(
            _pipe(client_reader, target_writer), _pipe(target_reader, client_writer), return_exceptions=True
        )
        for writer in (client_writer, target_writer):
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def connect_from(address: str, port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection to the front from a chosen loopback source address."""
    return socket.create_connection((HOST, port), timeout=timeout, source_address=(address, 0))
