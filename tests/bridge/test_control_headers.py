"""X-Mailrelay-* headers give SMTP clients the API's fields, and a re-sent message is answered with the
first one's id instead of being queued twice."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.bridge.conftest import HOST, message
from tests.bridge.test_real_clients import needs_swaks, queued_id, run_swaks

CONTROLS = (
    b"X-Mailrelay-Tags: campaign=welcome, tier=gold\r\n"
    b"X-Mailrelay-Metadata-Order-Id: 12345\r\n"
    b"x-mailrelay-delivery: at_most_once\r\n"
)


def with_headers(extra: bytes, **kwargs: Any) -> bytes:
    return extra + message(**kwargs)


def status_of(aws_statuses: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    (item,) = [i for i in aws_statuses if i["id"]["S"] == message_id]
    return item


def test_control_headers_are_recorded_and_not_relayed(start_bridge, shop_login, queued, stored_statuses):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(with_headers(CONTROLS))
    assert code == 250, reply
    message_id = reply.decode().rsplit(" ", 1)[-1]
    (item,) = queued()
    assert b"x-mailrelay" not in item["raw"].lower() and b"Subject: Hello" in item["raw"]
    assert item["delivery"] == "at_most_once"
    status = status_of(stored_statuses(), message_id)
    assert status["tags"]["M"] == {"campaign": {"S": "welcome"}, "tier": {"S": "gold"}}
    assert status["metadata"]["M"] == {"Order-Id": {"S": "12345"}}
    assert status["delivery"]["S"] == "at_most_once"


def test_a_send_at_header_schedules_the_message(start_bridge, shop_login, stored_statuses):
    bridge = start_bridge()
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(with_headers(f"X-Mailrelay-Send-At: {when.isoformat()}\r\n".encode()))
        assert code == 250, reply
        far = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(with_headers(f"X-Mailrelay-Send-At: {far}\r\n".encode()))
        assert code >= 550 and b"X-Mailrelay-Send-At" in reply, reply
    (status,) = stored_statuses()
    assert status["state"]["S"] == "scheduled"
    assert datetime.fromisoformat(status["send_at"]["S"]) == when


@needs_swaks
def test_control_headers_from_swaks_are_recorded_and_not_relayed(start_bridge, shop_login, queued, tmp_path):
    bridge = start_bridge()
    path = tmp_path / "message.eml"
    path.write_bytes(with_headers(b"X-Mailrelay-Tags: source=swaks\r\n", subject="swaks"))
    output = run_swaks(
        "--server", HOST, "--port", str(bridge.ports["starttls"]), "--tls", "--tls-verify", "--tls-ca-path",
        str(bridge.certs.ca_file), "--auth", "PLAIN", "--auth-user", shop_login[0], "--auth-password", shop_login[1],
        "--from", "app@example.com", "--to", "someone@example.net", "--data", f"@{path}",
    )  # fmt: skip
    queued_id(output)
    (item,) = queued()
    assert b"Subject: swaks" in item["raw"] and b"X-Mailrelay" not in item["raw"]


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (b"X-Mailrelay-Tags: campaign\r\n", b"X-Mailrelay-Tags"),
        (b"X-Mailrelay-Tags: bad name=1\r\n", b"X-Mailrelay-Tags"),
        (b"X-Mailrelay-Send-At: tomorrow\r\n", b"X-Mailrelay-Send-At"),
        (b"X-Mailrelay-Delivery: exactly_once\r\n", b"X-Mailrelay-Delivery"),
        (b"X-Mailrelay-Metadata-" + b"k" * 65 + b": v\r\n", b"X-Mailrelay-Metadata-kkk"),
        (b"X-Mailrelay-Idempotency-Key: has space\r\n", b"X-Mailrelay-Idempotency-Key"),
        (b"X-Mailrelay-Tag: a=b\r\n", b"X-Mailrelay-Tag"),  # misspelt: refused, never relayed
        (b"X-Mailrelay-Delivery: at_most_once\r\nX-Mailrelay-Delivery: at_least_once\r\n", b"X-Mailrelay-Delivery"),
    ],
)
def test_a_bad_control_header_is_refused_naming_it(start_bridge, shop_login, nothing_stored, header, named):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(with_headers(header))
    assert (code, reply[:5]) == (550, b"5.6.0"), reply
    assert named in reply
    nothing_stored()


def send(bridge: Any, login: tuple[str, str], data: bytes) -> tuple[int, bytes]:
    with bridge.starttls(login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        return smtp.data(data)


def test_a_re_sent_message_gets_the_first_id_and_is_queued_once(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = with_headers(b"Message-ID: <order-1@example.com>\r\n", subject="receipt")
    first = send(bridge, shop_login, data)
    again = send(bridge, shop_login, data)
    assert first[0] == again[0] == 250 and first[1] == again[1]
    # Same Message-ID, other content: another message.
    other = send(bridge, shop_login, with_headers(b"Message-ID: <order-1@example.com>\r\n", subject="changed"))
    assert other[0] == 250 and other[1] != first[1]
    assert len(queued()) == 2
    assert bridge.runtime.metrics.snapshot()["duplicates_answered"] == 1


def test_an_idempotency_key_reused_for_other_content_is_refused(start_bridge, shop_login, queued):
    bridge = start_bridge()
    keyed = b"X-Mailrelay-Idempotency-Key: invoice-77\r\n"
    first = send(bridge, shop_login, with_headers(keyed, subject="one"))
    assert send(bridge, shop_login, with_headers(keyed, subject="one")) == first
    code, reply = send(bridge, shop_login, with_headers(keyed, subject="two"))
    assert (code, reply[:5]) == (550, b"5.6.0") and b"X-Mailrelay-Idempotency-Key" in reply
    assert len(queued()) == 1


def test_a_retry_after_the_connection_dropped_at_the_final_dot_is_delivered_once(
    start_bridge, shop_login, queued, stored_statuses
):
    """The client sent its final dot and lost the connection before our 250: it retries, and gets the
    first message's id (RFC 5321 §4.1.1.4 leaves it unsure; de-duplication makes the retry safe)."""
    bridge = start_bridge()
    data = with_headers(b"Message-ID: <cut-1@example.com>\r\n", subject="cut")
    with socket.create_connection((HOST, bridge.ports["implicit"])) as raw:
        tls = bridge.certs.client_context().wrap_socket(raw, server_hostname=HOST)
        login = f"\0{shop_login[0]}\0{shop_login[1]}".encode()
        commands = [b"EHLO client.test", b"AUTH PLAIN " + base64.b64encode(login), b"MAIL FROM:<app@example.com>",
                    b"RCPT TO:<a@example.net>", b"DATA"]  # fmt: skip
        tls.sendall(b"".join(c + b"\r\n" for c in commands) + data + b".\r\n")  # pipelined
        received = b""
        while b"queued as" not in received:  # the 250 reached this host; the application never saw it
            chunk = tls.recv(4096)
            assert chunk, f"closed before the final reply: {received!r}"
            received += chunk
        tls.close()
    (first_id,) = [s["id"]["S"] for s in stored_statuses()]
    code, reply = send(bridge, shop_login, data)
    assert code == 250 and reply.decode().endswith(first_id)
    assert [m["id"] for m in queued()] == [first_id]
