"""Messages submitted by real clients land on the queue as the client sent them (canonical form),
with only Received (and Message-ID/Date when missing) added, and the 250 reply names the queued id."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.bridge.conftest import message

QUEUED = re.compile(r"queued as ([0-9a-f]{32})")


def queued_id(reply: bytes) -> str:
    match = QUEUED.search(reply.decode())
    assert match, reply
    return match.group(1)


def split_added_headers(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header lines we prepended (Received, Message-ID, Date) and the rest, as the client sent it."""
    added: list[bytes] = []
    rest = raw
    while rest.startswith((b"Received:", b"\t", b"Message-ID:", b"Date:")):
        line, rest = rest.split(b"\r\n", 1)
        added.append(line)
    return added, rest


def submit(smtp: Any, data: bytes, sender: str = "app@example.com", rcpt: tuple[str, ...] = ("a@example.net",)) -> str:
    code, _ = smtp.mail(sender)
    assert code == 250
    for r in rcpt:
        assert smtp.rcpt(r)[0] == 250
    code, reply = smtp.data(data)
    assert code == 250, reply
    return queued_id(reply)


def test_starttls_auth_submission_lands_on_the_queue_unchanged(start_bridge, shop_login, queued, stored_statuses):
    bridge = start_bridge()
    data = message(body="Line one.\r\n.leading dot survives dot-stuffing\r\nLast line.")
    with bridge.starttls(shop_login) as smtp:
        message_id = submit(smtp, data, rcpt=("to@example.net", "bcc@example.org"))

    [item] = queued()
    assert item["id"] == message_id
    assert item["client_id"] == "shop"
    assert item["mail_from"] == "app@example.com"
    assert item["rcpt_to"] == ["to@example.net", "bcc@example.org"]  # Bcc travels in the envelope
    added, rest = split_added_headers(item["raw"])
    assert rest == data
    assert added[0].startswith(b"Received: from client.test ([127.0.0.1])")
    assert b"with ESMTPSA;" in b"".join(added)
    assert f"Message-ID: <{message_id}@".encode() in b"\r\n".join(added)
    assert any(line.startswith(b"Date: ") for line in added)
    assert [s["id"]["S"] for s in stored_statuses()] == [message_id]


def test_implicit_tls_auth_login_submission(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = message(subject="Over 465")
    with bridge.implicit() as smtp:
        smtp.login(*shop_login)  # smtplib picks CRAM-MD5 > PLAIN > LOGIN; force LOGIN below too
        message_id = submit(smtp, data)
    with bridge.implicit() as smtp:
        smtp.user, smtp.password = shop_login
        code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert code == 235
        second = submit(smtp, data)
    items = {i["id"]: i for i in queued()}
    assert set(items) == {message_id, second}
    assert split_added_headers(items[message_id]["raw"])[1] == data


def test_existing_message_id_and_date_are_kept_and_nothing_else_is_rewritten(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = (
        b"Message-ID: <mine@app.example.com>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        b"From: App <app@example.com>\r\nTo: x@example.net\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n\r\n"
        + b"x" * 998
        + b"\r\n"
    )
    with bridge.starttls(shop_login) as smtp:
        submit(smtp, data)
    [item] = queued()
    raw = item["raw"]
    assert raw.startswith(b"Received: from client.test")
    assert raw[raw.index(b"\r\nMessage-ID:") + 2 :] == data  # only Received was added


def test_large_message_goes_through_s3_and_is_identical(start_bridge, shop_login, queued):
    bridge = start_bridge()
    body = "\r\n".join(f"line {i:06d} " + "y" * 60 for i in range(4000))
    data = message(body=body)
    assert len(data) > get_inline_limit()
    with bridge.starttls(shop_login) as smtp:
        submit(smtp, data)
    [item] = queued()
    assert item["payload"]["kind"] == "s3"
    assert split_added_headers(item["raw"])[1] == data


def get_inline_limit() -> int:
    from mailrelay.settings import get_settings

    return get_settings().inline_payload_max_bytes


def test_ehlo_advertises_size_and_auth_only_after_tls(start_bridge):
    bridge = start_bridge()
    import smtplib

    smtp = smtplib.SMTP("127.0.0.1", bridge.ports["starttls"], local_hostname="client.test")
    smtp.ehlo()
    assert smtp.has_extn("starttls")
    assert not smtp.has_extn("auth")
    assert int(smtp.esmtp_features["size"]) == bridge.runtime.size_limit
    smtp.starttls(context=bridge.certs.client_context())
    smtp.ehlo()
    assert smtp.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
    assert smtp.has_extn("enhancedstatuscodes")
    smtp.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms(start_bridge, shop_login, mechanism):
    bridge = start_bridge()
    with bridge.starttls() as smtp:
        smtp.user, smtp.password = shop_login
        method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        assert smtp.auth(mechanism, method)[0] == 235
