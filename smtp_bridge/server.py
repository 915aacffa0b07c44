"""Starting, serving and draining the bridge: listeners, readiness endpoint, signals, worker processes.

Entry points: ``main(argv)`` (``python -m smtp_bridge``, ``mailrelay bridge``), ``serve(settings)``
(blocking, returns the exit code) and ``Bridge`` (in-process, for the local stack and tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mailrelay.settings import ConfigurationError, Settings, get_settings
from mailrelay.wiring import Services
from smtp_bridge.handler import BridgeHandler
from smtp_bridge.observability import logger, quiet_library_logs
from smtp_bridge.protocol import BridgeSMTP, Listener
from smtp_bridge.readiness import ReadinessServer
from smtp_bridge.runtime import Runtime
from smtp_bridge.settings import BridgeSettings, bridge_settings_from
from smtp_bridge.tls import server_context

BACKLOG = 1024


def listener_ports(settings: BridgeSettings) -> dict[Listener, int]:
    wanted: dict[Listener, int | None] = {
        "starttls": settings.submission_port,
        "implicit": settings.implicit_tls_port,
        "plain": settings.plain_port,
    }
    return {name: port for name, port in wanted.items() if port is not None}


def bind_sockets(settings: BridgeSettings) -> dict[Listener, socket.socket]:
    """Listening sockets bound once, before worker processes fork, so every worker serves the same ports."""
    bound: dict[Listener, socket.socket] = {}
    for name, port in listener_ports(settings).items():
        family = socket.AF_INET6 if ":" in settings.bind_address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.bind_address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        bound[name] = sock
    return bound


class Bridge:
    def __init__(
        self,
        settings: BridgeSettings,
        core: Settings | None = None,
        services: Services | None = None,
        *,
        readiness: bool = True,
    ) -> None:
        quiet_library_logs()
        core = core or get_settings()
        self.settings = settings
        self.runtime = Runtime(settings, core, services or Services(core), server_context(settings))
        self.handler = BridgeHandler(self.runtime)
        self.servers: dict[Listener, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        self._readiness = (
            ReadinessServer(self.is_ready, self.runtime.metrics, proxy_protocol=settings.proxy_protocol)
            if readiness
            else None
        )
        self._metrics_task: asyncio.Task[None] | None = None

    def is_ready(self) -> bool:
        return bool(self.servers) and not self.runtime.draining

    async def start(self, sockets: dict[Listener, socket.socket] | None = None) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        for name, port in listener_ports(self.settings).items():
            factory = functools.partial(BridgeSMTP, self.handler, self.runtime, name)
            if sockets and name in sockets:
                server = await loop.create_server(factory, sock=sockets[name], backlog=BACKLOG)
            else:
                server = await loop.create_server(
                    factory, host=self.settings.bind_address, port=port, reuse_address=True, backlog=BACKLOG
                )
            self.servers[name] = server
            self.ports[name] = server.sockets[0].getsockname()[1]
        if self._readiness is not None and self.settings.readiness_port is not None:
            self.ports["readiness"] = await self._readiness.start(
                self.settings.bind_address, self.settings.readiness_port
            )
        self._metrics_task = loop.create_task(self._emit_metrics())
        logger.info("SMTP bridge listening", extra={"ports": self.ports, "pid": os.getpid()})
        return self.ports

    async def _emit_metrics(self) -> None:
        while True:
            await asyncio.sleep(self.settings.metrics_interval_seconds)
            self.runtime.metrics.emit_emf()

    async def drain(self) -> None:
        """Stop accepting, 421 to idle sessions, let transactions finish, close the rest at the deadline."""
        runtime = self.runtime
        runtime.draining = True
        for server in self.servers.values():
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_grace_seconds
        logger.info("draining", extra={"sessions": len(runtime.sessions), "grace": self.settings.drain_grace_seconds})
        for session in list(runtime.sessions):
            session.close_if_idle()
        while runtime.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(runtime.sessions):
            logger.warning("session still open at the drain deadline", extra={"client_address": session.client_address})
            if isinstance(session.transport, asyncio.Transport):
                session.transport.abort()
        await asyncio.sleep(0)
        await self.close()

    async def close(self) -> None:
        for server in self.servers.values():
            server.close()
        if self._readiness is not None:
            await self._readiness.close()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_task
        await asyncio.get_running_loop().run_in_executor(None, self.runtime.close)
        self.runtime.metrics.emit_emf()


async def _run(
    settings: BridgeSettings, sockets: dict[Listener, socket.socket] | None, ports_file: str | None, readiness: bool
) -> int:
    bridge = Bridge(settings, readiness=readiness)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ports = await bridge.start(sockets)
    if ports_file:
        _write_ports(ports_file, ports)
    await stop.wait()
    logger.info("SIGTERM received: stopping")
    await bridge.drain()
    logger.info("SMTP bridge stopped")
    return 0


def _write_ports(path: str, ports: dict[str, int]) -> None:
    """Atomically, so a supervisor polling the file never reads half of it."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(ports))
    tmp.replace(path)


def serve(settings: BridgeSettings | None = None, *, ports_file: str | None = None) -> int:
    """Run the bridge until SIGTERM/SIGINT, then drain; returns the process exit code."""
    quiet_library_logs()
    settings = settings or bridge_settings_from()
    get_settings()  # fail now, not at the first message, on a bad core configuration
    if settings.workers == 1:
        return asyncio.run(_run(settings, None, ports_file, readiness=True))
    return _serve_workers(settings, ports_file)


def _serve_workers(settings: BridgeSettings, ports_file: str | None) -> int:
    """Pre-bound sockets shared by forked workers (one event loop each); this process supervises."""
    sockets = bind_sockets(settings)
    ports: dict[str, int] = {name: s.getsockname()[1] for name, s in sockets.items()}
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = asyncio.run(_run(settings, sockets, None, readiness=False))
            finally:
                os._exit(code)
        children.append(pid)
    for sock in sockets.values():
        sock.close()  # only the workers listen: once they close, new connections are refused
    return asyncio.run(_supervise(settings, children, ports, ports_file))


async def _supervise(
    settings: BridgeSettings, children: list[int], ports: dict[str, int], ports_file: str | None
) -> int:
    from smtp_bridge.observability import metrics

    draining = False
    alive = set(children)
    readiness = ReadinessServer(
        lambda: not draining and len(alive) == len(children), metrics, proxy_protocol=settings.proxy_protocol
    )
    if settings.readiness_port is not None:
        ports["readiness"] = await readiness.start(settings.bind_address, settings.readiness_port)
    if ports_file:
        _write_ports(ports_file, ports)
    logger.info("SMTP bridge listening", extra={"ports": ports, "workers": children})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    code = 0
    deadline: float | None = None
    while alive:
        if stop.is_set() and not draining:
            draining = True
            deadline = time.monotonic() + settings.drain_grace_seconds + 5
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid in list(alive):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                alive.discard(pid)
                if not draining:  # a worker died on its own: stop all, let the orchestrator restart us
                    code = 1
                    stop.set()
        if deadline is not None and time.monotonic() > deadline:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
    await readiness.close()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mailrelay bridge", description="SMTP submission bridge (configured by MAILRELAY_BRIDGE_* variables)"
    )
    parser.add_argument("--ports-file", help="write the bound ports as JSON to this file once listening")
    args = parser.parse_args(argv)
    try:
        settings = bridge_settings_from()
        return serve(settings, ports_file=args.ports_file or os.environ.get("MAILRELAY_BRIDGE_PORTS_FILE"))
    except ConfigurationError as exc:
        print(f"mailrelay bridge: {exc}", file=sys.stderr)
        return 2
