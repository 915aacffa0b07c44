"""What the SMTP session fuzzer found, each reduced to the bytes that show it: regression tests."""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest

from smtp_bridge.observability import metrics
from tests.bridge.conftest import HOST, RawSession
from tests.bridge.fuzz import client_hello

REPLY_TEXT = re.compile(rb"\d{3}[ -][\t\x20-\x7e]*\r\n")


class TLSSession(RawSession):
    """RawSession over TLS (the implicit-TLS port, or after STARTTLS)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(sock, server_hostname="localhost")
        self.buffer = b""


@pytest.fixture
def unhandled() -> Iterator[Callable[[], list[str]]]:
    """unhandled(): the ERROR records with a traceback (any logger) and handler_exceptions counted since the start."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: records.append(record) if record.exc_info else None  # type: ignore[method-assign]
    before = metrics.snapshot().get("handler_exceptions", 0)
    logging.getLogger().addHandler(handler)

    def found() -> list[str]:
        counted = metrics.snapshot().get("handler_exceptions", 0) - before
        return [r.getMessage() for r in records] + [f"handler_exceptions +{counted}"] * bool(counted)

    yield found
    logging.getLogger().removeHandler(handler)


def implicit_tls(bridge) -> TLSSession:
    """A session on the implicit-TLS port, greeted."""
    session = TLSSession(socket.create_connection((HOST, bridge.ports["implicit"])), bridge.certs.client_context())
    assert session.reply().startswith("220")
    return session


def released(bridge, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while bridge.runtime.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    return not bridge.runtime.sessions and bridge.runtime.caps.total == 0


@pytest.mark.parametrize("line", [b"NO\x00OP", b"\x1b[31mQUIT", b"RC\rPT TO:<a@example.net>", b"VRFY a\rb"])
def test_replies_echo_no_control_characters(start_bridge, line):
    # C: EHLO, then a command word holding NUL, ESC or a bare CR (or VRFY with a bare CR in its argument)
    # S: 500 Error: command "NO\x00OP" not recognized   <- RFC 5321 §4.2: reply text is %d9 / %d32-126
    # S: 502 Could not VRFY a\rb
    bridge = start_bridge(plain_port=0, allowed_networks=[{"cidr": "127.0.0.0/8", "client_id": "shop"}])
    session = RawSession(bridge.ports["plain"])
    session.reply()
    session.command(b"EHLO client.test")
    session.send(line + b"\r\n")
    session.send(b"NOOP\r\n")  # the reply's end, whatever it holds, is then followed by NOOP's 250
    time.sleep(0.3)
    session.sock.settimeout(2)
    while not session.buffer.endswith(b"250 OK\r\n") and not session.buffer.endswith(b"250 2.0.0 OK\r\n"):
        session.buffer += session.sock.recv(4096)
    reply = session.buffer.split(b"\r\n", 1)[0] + b"\r\n"
    assert reply[:1] == b"5" or reply.startswith(b"252 "), reply  # refused, or VRFY's "cannot verify"
    assert REPLY_TEXT.fullmatch(reply), reply


@pytest.mark.parametrize("sent", ["nothing", "half a ClientHello"])
def test_a_failed_implicit_tls_handshake_releases_its_session(start_bridge, sent):
    # C: connect to the implicit-TLS port; send nothing (a TCP health check) or part of a ClientHello; close.
    # The bridge counts the session and its connection for ever: 50 of these from one address (1,000 in
    # all) and every later connection from it (from anyone) gets 421 4.7.0 Too many connections.
    bridge = start_bridge(tls_handshake_timeout_seconds=0.5, max_connections_per_client=3)
    hello = client_hello(bridge.certs.client_context())
    seen = metrics.snapshot().get("connections", 0)
    for _ in range(3):
        sock = socket.create_connection((HOST, bridge.ports["implicit"]))
        if sent != "nothing":
            sock.sendall(hello[: len(hello) // 2])
        sock.close()
    deadline = time.monotonic() + 10
    while metrics.snapshot().get("connections", 0) - seen < 3:  # the bridge has taken all three
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert released(bridge), f"{len(bridge.runtime.sessions)} sessions still open, caps {bridge.runtime.caps.total}"
    implicit_tls(bridge)  # greeted, not refused by the per-client cap


def test_a_failed_starttls_handshake_logs_no_exception(start_bridge, unhandled):
    # C: EHLO, STARTTLS; S: 220; C: half a ClientHello, then close.
    # The bridge logs "SMTP session error" at ERROR with a TLSSetupException traceback and counts
    # handler_exceptions: any client that drops mid-handshake looks like a bug of ours to an alarm.
    bridge = start_bridge()
    session = RawSession(bridge.ports["starttls"])
    session.reply()
    session.command(b"EHLO client.test")
    assert session.command(b"STARTTLS").startswith("220")
    session.send(client_hello(bridge.certs.client_context())[:60])
    session.close()
    assert released(bridge)
    assert unhandled() == []


def test_commands_pipelined_past_a_closing_reply_over_tls_log_no_exception(start_bridge, unhandled):
    # C (implicit TLS, one write): 8 unknown commands.
    # S: 500 x4, then "502 5.5.1 Too many unrecognized commands, goodbye." and close; the lines after it
    # are still read, and each reply hits the closed TLS transport: AttributeError ('_write_appdata'),
    # logged as "SMTP session error" with a traceback, and counted in handler_exceptions.
    bridge = start_bridge()
    session = implicit_tls(bridge)
    session.send(b"XYZZY\r\n" * 8)
    replies = [session.reply() for _ in range(5)]
    assert replies[-1].startswith("502")
    assert session.closed()
    session.close()
    assert released(bridge)
    assert unhandled() == []


def test_an_overlong_auth_response_is_a_syntax_error_not_an_exception(start_bridge, unhandled):
    # C (TLS): EHLO, AUTH PLAIN; S: 334; C: a 3,000-octet response line.
    # S: 451 4.3.0 Temporary local problem (ValueError "Separator is found, but chunk is longer than
    # limit" from StreamReader.readline, logged with a traceback, counted in handler_exceptions);
    # RFC 4954 §4 / RFC 5321 §4.3.2: a response that long is a 500/501 syntax error, and nothing of ours failed.
    bridge = start_bridge()
    session = implicit_tls(bridge)
    session.command(b"EHLO client.test")
    assert session.command(b"AUTH PLAIN").startswith("334")
    reply = session.command(b"eHh4" * 750)
    assert reply[:3] in ("500", "501"), reply
    assert session.command(b"NOOP").startswith("250")
    assert unhandled() == []


def test_a_refused_sender_is_not_echoed_in_8_bit(start_bridge, shop_login):
    # C (TLS, authenticated as shop): MAIL FROM:<äpp@exämple.com>  (no SMTPUTF8 parameter)
    # S: 550 5.7.1 Sender not allowed for this client: \xc3\xa4pp@xn--example-5wa.com
    # RFC 5321 §4.2: reply text is ASCII (%d9 / %d32-126) unless the transaction asked for SMTPUTF8.
    bridge = start_bridge()
    session = implicit_tls(bridge)
    session.command(b"EHLO client.test")
    login = f"\x00{shop_login[0]}\x00{shop_login[1]}".encode()
    assert session.command(b"AUTH PLAIN " + base64.b64encode(login)).startswith("235")
    session.send("MAIL FROM:<äpp@exämple.com>\r\n".encode())
    session.sock.settimeout(10)
    while b"\r\n" not in session.buffer:
        session.buffer += session.sock.recv(4096)
    reply = session.buffer.split(b"\r\n", 1)[0] + b"\r\n"
    assert reply.startswith(b"5"), reply
    assert REPLY_TEXT.fullmatch(reply), reply


def test_vrfy_with_an_8_bit_argument_gets_an_answer_not_an_exception(start_bridge, unhandled):
    # C: EHLO, then VRFY with the argument: a backslash and the byte 0xFF (not UTF-8; no address, so echoed)
    # S: 451 4.3.0 Temporary local problem: the "502 Could not VRFY ..." reply raised UnicodeEncodeError,
    # logged with a traceback and counted in handler_exceptions.
    bridge = start_bridge(plain_port=0, allowed_networks=[{"cidr": "127.0.0.0/8", "client_id": "shop"}])
    session = RawSession(bridge.ports["plain"])
    session.reply()
    session.command(b"EHLO client.test")
    reply = session.command(b"VRFY \\\xff")
    assert reply[:3] in ("252", "501", "502", "553"), reply
    assert unhandled() == []
