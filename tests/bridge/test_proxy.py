"""PROXY protocol v2 (behind the NLB): the client address comes from the header; without it, no service."""

from __future__ import annotations

import socket
import ssl

from tests.bridge.conftest import HOST, RawSession, message, proxy_v2_header, proxy_v2_local

BEHIND_NLB = {"proxy_protocol": True, "proxy_protocol_timeout_seconds": 3, "proxy_trusted_networks": ["127.0.0.0/8"]}
OFFICE = [{"cidr": "10.20.0.0/16", "client_id": "shop"}]


def test_connection_without_proxy_header_is_refused(start_bridge):
    bridge = start_bridge(**BEHIND_NLB)
    for port in (bridge.ports["starttls"], bridge.ports["implicit"]):
        session = RawSession(port)
        session.send(b"EHLO client.test\r\n")  # a client that skips the header gets no greeting
        assert session.closed()
        assert b"220" not in session.buffer
    silent = RawSession(bridge.ports["starttls"])  # nor does one that waits for the greeting
    assert silent.closed() and silent.buffer == b""


def test_allowlisted_network_is_recognised_through_the_proxy_header(start_bridge, shop_key, queued):
    bridge = start_bridge(**BEHIND_NLB, plain_port=0, allowed_networks=OFFICE)
    session = RawSession(bridge.ports["plain"], prefix=proxy_v2_header("10.20.3.4"))
    assert session.reply().startswith("220 bridge.test")
    assert session.command(b"EHLO app.office").startswith("250")
    assert session.command(b"MAIL FROM:<app@example.com>").startswith("250")
    assert session.command(b"MAIL FROM:<x@example.com>").startswith("503")  # nested, still one transaction
    assert session.command(b"RCPT TO:<a@example.net>").startswith("250")
    assert session.command(b"DATA").startswith("354")
    session.send(message() + b".\r\n")
    assert session.reply().startswith("250 2.0.0")
    session.close()
    [item] = queued()
    assert b"([10.20.3.4])" in item["raw"].split(b"\r\n\t")[0]  # the Received header names the real client


def test_proxy_source_outside_the_allowlist_is_not_trusted(start_bridge, shop_key):
    bridge = start_bridge(**BEHIND_NLB, plain_port=0, allowed_networks=OFFICE)
    # The peer (127.0.0.1) is not what counts: the header says 203.0.113.9, which is not allowlisted.
    session = RawSession(bridge.ports["plain"], prefix=proxy_v2_header("203.0.113.9"))
    assert session.reply().startswith("554 5.7.1")
    assert session.closed()
    tls = RawSession(bridge.ports["starttls"], prefix=proxy_v2_header("203.0.113.9"))
    assert tls.reply().startswith("220")
    tls.command(b"EHLO x")
    assert tls.command(b"MAIL FROM:<app@example.com>").startswith("530")


def test_health_check_local_header_gets_a_greeting_and_no_privileges(start_bridge):
    bridge = start_bridge(**BEHIND_NLB, plain_port=0, allowed_networks=[{"cidr": "127.0.0.0/8", "client_id": "shop"}])
    session = RawSession(bridge.ports["starttls"], prefix=proxy_v2_local())
    assert session.reply().startswith("220")
    session.close()
    plain = RawSession(bridge.ports["plain"], prefix=proxy_v2_local())
    assert plain.reply().startswith("554")  # LOCAL carries no client address: not the allowlisted peer


def test_implicit_tls_after_the_proxy_header(start_bridge, shop_login, queued):
    bridge = start_bridge(**BEHIND_NLB)
    raw = socket.create_connection((HOST, bridge.ports["implicit"]), timeout=10)
    raw.sendall(proxy_v2_header("198.51.100.7", dest_port=465))
    tls = bridge.certs.client_context().wrap_socket(raw, server_hostname="localhost")
    assert isinstance(tls, ssl.SSLSocket)
    assert tls.recv(1000).startswith(b"220 bridge.test")
    tls.close()


def test_the_per_client_cap_counts_the_proxied_address(start_bridge):
    bridge = start_bridge(**BEHIND_NLB, max_connections_per_client=1)
    first = RawSession(bridge.ports["starttls"], prefix=proxy_v2_header("198.51.100.7"))
    assert first.reply().startswith("220")
    second = RawSession(bridge.ports["starttls"], prefix=proxy_v2_header("198.51.100.7"))
    assert second.reply().startswith("421 4.7.0")
    other = RawSession(bridge.ports["starttls"], prefix=proxy_v2_header("198.51.100.8"))  # same peer, other client
    assert other.reply().startswith("220")
