"""Load and abuse: concurrent sessions, deadlines a slow client cannot stretch, caps, bounded memory."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import tracemalloc

from tests.bridge.conftest import HOST, RawSession, message

ALLOWLISTED = [{"cidr": "127.0.0.0/8", "client_id": "shop"}]
PLAIN_ONLY = {"plain_port": 0, "allowed_networks": ALLOWLISTED, "submission_port": None, "implicit_tls_port": None}


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


async def _one_session(port: int, gate: asyncio.Event, index: int) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    assert (await _reply(reader)).startswith(b"220")
    await gate.wait()  # every session is open before any of them sends
    for command in (b"EHLO c.test", b"MAIL FROM:<app@example.com>", f"RCPT TO:<r{index}@example.net>".encode()):
        writer.write(command + b"\r\n")
        assert (await _reply(reader)).startswith(b"250"), command
    writer.write(b"DATA\r\n")
    assert (await _reply(reader)).startswith(b"354")
    writer.write(message(subject=f"n{index}") + b".\r\n")
    final = await _reply(reader)
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    return final


def test_200_concurrent_sessions_are_served(start_bridge, shop_key, queued):
    bridge = start_bridge(**PLAIN_ONLY, max_connections_per_client=250)

    async def run() -> list[bytes]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(_one_session(bridge.ports["plain"], gate, i)) for i in range(200)]
        while len(bridge.runtime.sessions) < 200:
            await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    finals = asyncio.run(run())
    assert all(f.startswith(b"250 2.0.0") for f in finals)
    assert len({i["id"] for i in queued()}) == 200


def test_idle_session_times_out_with_421(start_bridge):
    bridge = start_bridge(command_timeout_seconds=0.5)
    session = RawSession(bridge.ports["starttls"])
    assert session.reply().startswith("220")
    assert session.reply().startswith("421 4.4.2")
    assert session.closed()


def test_a_command_trickled_byte_by_byte_cannot_stretch_the_deadline(start_bridge):
    bridge = start_bridge(command_timeout_seconds=0.5)
    session = RawSession(bridge.ports["starttls"])
    session.reply()
    closed = False
    for byte in b"EHLO slow.client.example.com" * 10:  # 280 bytes, one every 50 ms: no complete command
        try:
            session.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.05)
    assert closed or session.closed()
    # The 421 is sent, but a client still writing may get a reset before reading it.
    assert session.buffer in (b"", b"421 4.4.2 Timeout exceeded; closing connection\r\n")


def test_slow_data_cannot_stretch_the_data_deadline(start_bridge, shop_key, queued):
    bridge = start_bridge(**PLAIN_ONLY, command_timeout_seconds=5, data_timeout_seconds=1)
    session = RawSession(bridge.ports["plain"])
    session.reply()
    session.command(b"EHLO c.test")
    session.command(b"MAIL FROM:<app@example.com>")
    session.command(b"RCPT TO:<a@example.net>")
    assert session.command(b"DATA").startswith("354")
    session.send(b"From: app@example.com\r\nTo: a@example.net\r\n\r\n")
    cut_off = False
    for _ in range(100):  # a valid line every 100 ms; the DATA deadline is 1 s in total
        try:
            session.send(b"still sending\r\n")
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
            break
        time.sleep(0.1)
    assert cut_off or session.closed()
    assert session.buffer in (b"", b"421 4.4.2 Timeout exceeded; closing connection\r\n")
    assert queued() == []


def test_tls_handshake_has_a_short_deadline(start_bridge):
    bridge = start_bridge(tls_handshake_timeout_seconds=0.5, command_timeout_seconds=60)
    silent = socket.create_connection((HOST, bridge.ports["implicit"]), timeout=30)
    assert silent.recv(100) == b""  # closed by us long before the 60 s command deadline
    session = RawSession(bridge.ports["starttls"], timeout=30)
    session.reply()
    session.command(b"EHLO c.test")
    assert session.command(b"STARTTLS").startswith("220")
    assert session.closed()  # no ClientHello follows: dropped


def test_total_connection_cap(start_bridge):
    bridge = start_bridge(max_connections=3)
    sessions = [RawSession(bridge.ports["starttls"]) for _ in range(3)]
    assert all(s.reply().startswith("220") for s in sessions)
    extra = RawSession(bridge.ports["starttls"])
    assert extra.reply().startswith("421 4.7.0")
    assert extra.closed()
    sessions[0].command(b"QUIT")
    sessions[0].closed()
    while len(bridge.runtime.sessions) > 2:
        time.sleep(0.02)
    assert RawSession(bridge.ports["starttls"]).reply().startswith("220")  # room again


def test_memory_stays_bounded_with_many_idle_sessions(start_bridge):
    count = 300
    bridge = start_bridge(max_connections_per_client=count, max_connections=count)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        sessions = [RawSession(bridge.ports["starttls"]) for _ in range(count)]
        for session in sessions:
            assert session.reply().startswith("220")
            session.command(b"EHLO idle.client")
        held = tracemalloc.get_traced_memory()[0] - baseline
        refused = RawSession(bridge.ports["starttls"])  # over the cap: refused, costs nothing lasting
        assert refused.reply().startswith("421")
        for session in sessions:
            session.close()
        while bridge.runtime.sessions:
            time.sleep(0.05)
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert held / count < 64 * 1024, f"{held / count:.0f} bytes per idle session"
    assert left < held / 4, f"{left} bytes still held after every session closed"
