"""SMTP smuggling: DATA ends only at <CR><LF>.<CR><LF>; bare CR/LF is refused (or normalised when
configured) and never stored as written; a smuggled second transaction never happens."""

from __future__ import annotations

import pytest

from mailrelay.canonical import has_bare_newline
from tests.bridge.conftest import RawSession

HEAD = b"From: app@example.com\r\nTo: victim@example.net\r\nSubject: smuggle\r\n\r\nbody"
SMUGGLED = (
    b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nspoofed"
)
PRIMITIVES = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
}
ALLOWLISTED = [{"cidr": "127.0.0.0/8", "client_id": "shop"}]


def transaction(port: int, payload: bytes) -> list[str]:
    """One transaction with raw DATA bytes, then QUIT; every reply the server gave, in order."""
    session = RawSession(port)
    replies = [session.reply(), session.command(b"EHLO client.test")]
    replies += [session.command(b"MAIL FROM:<app@example.com>"), session.command(b"RCPT TO:<victim@example.net>")]
    replies.append(session.command(b"DATA"))
    session.send(payload + b"\r\n.\r\n")
    replies.append(session.reply())
    replies.append(session.command(b"QUIT"))
    session.close()
    return [r.split("\n")[-1][:3] for r in replies]


@pytest.mark.parametrize("primitive", PRIMITIVES.values(), ids=PRIMITIVES.keys())
def test_smuggling_payloads_are_rejected_by_default(start_bridge, shop_key, queued, primitive):
    bridge = start_bridge(plain_port=0, allowed_networks=ALLOWLISTED, submission_port=None, implicit_tls_port=None)
    codes = transaction(bridge.ports["plain"], HEAD + primitive + SMUGGLED)
    assert codes == ["220", "250", "250", "250", "354", "550", "221"]  # one DATA reply, no second transaction
    assert queued() == []


def test_bare_lf_in_headers_is_rejected(start_bridge, shop_key, queued):
    bridge = start_bridge(plain_port=0, allowed_networks=ALLOWLISTED, submission_port=None, implicit_tls_port=None)
    payload = b"From: app@example.com\r\nSubject: a\nX-Injected: b\r\nTo: x@example.net\r\n\r\nbody"
    assert transaction(bridge.ports["plain"], payload)[5] == "550"
    assert queued() == []


@pytest.mark.parametrize("primitive", PRIMITIVES.values(), ids=PRIMITIVES.keys())
def test_normalised_when_configured_and_never_stored_as_written(start_bridge, shop_key, queued, primitive):
    bridge = start_bridge(
        plain_port=0, allowed_networks=ALLOWLISTED, submission_port=None, implicit_tls_port=None,
        bare_newlines="normalize",
    )  # fmt: skip
    payload = HEAD + primitive + SMUGGLED
    codes = transaction(bridge.ports["plain"], payload)
    assert codes == ["220", "250", "250", "250", "354", "250", "221"]
    [item] = queued()  # never two messages
    raw = item["raw"]
    assert not has_bare_newline(raw)
    assert payload not in raw
    assert item["rcpt_to"] == ["victim@example.net"] and item["mail_from"] == "app@example.com"
