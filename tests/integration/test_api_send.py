"""POST /v1/messages end to end in-process: real handler, moto for AWS, MIME parsed back."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from datetime import UTC, datetime, timedelta

import boto3


def _parse(queued: dict) -> email.message.EmailMessage:
    raw = base64.b64decode(queued["payload"]["data"])
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_valid_request_is_queued_once_and_parses_back(api, client_key, queue_messages):
    # Given: a message with text, html, an inline image and an attachment
    png = base64.b64encode(b"\x89PNG fake image bytes").decode()
    body = {
        "from": {"email": "orders@example.com", "name": "Shop Örders"},
        "to": ["alice@example.org", {"email": "bob@example.org", "name": "Bob"}],
        "cc": ["carol@example.org"],
        "bcc": ["audit@example.net"],
        "reply_to": "help@example.com",
        "subject": "Your receipt \u2013 #42",
        "text": "Thanks!",
        "html": '<p>Thanks! <img src="cid:logo"></p>',
        "attachments": [
            {
                "filename": "receipt.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(b"%PDF-1.4").decode(),
            },
            {"filename": "logo.png", "content_type": "image/png", "content": png, "content_id": "logo"},
        ],
        "headers": {"X-Order": "42", "List-Unsubscribe": "<mailto:unsub@example.com>"},
        "tags": [{"name": "category", "value": "receipt"}],
    }
    # When
    response = api("POST", "/v1/messages", body, key=client_key)
    # Then: 202 with an id, and exactly one queue message carrying the whole envelope
    assert response.status == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    messages = queue_messages()
    assert len(messages) == 1
    queued = messages[0]
    assert queued["v"] == 1 and queued["id"] == accepted["id"] and queued["client_id"] == "shop"
    assert queued["mail_from"] == "orders@example.com"
    assert queued["rcpt_to"] == ["alice@example.org", "bob@example.org", "carol@example.org", "audit@example.net"]
    raw = base64.b64decode(queued["payload"]["data"])
    assert queued["size"] == len(raw) and queued["sha256"] == hashlib.sha256(raw).hexdigest()
    assert b"\r\n" in raw and raw.replace(b"\r\n", b"").count(b"\n") == 0

    msg = _parse(queued)
    assert msg["From"] == "Shop Örders <orders@example.com>"
    assert msg["To"] == "alice@example.org, Bob <bob@example.org>"
    assert msg["Cc"] == "carol@example.org"
    assert msg["Bcc"] is None and b"audit@example.net" not in raw
    assert msg["Reply-To"] == "help@example.com"
    assert msg["Subject"] == "Your receipt \u2013 #42"
    assert msg["Message-ID"] == f"<{accepted['id']}@mailrelay.local>"
    assert msg["Date"] is not None and msg["X-Order"] == "42"
    assert msg.get_body(("plain",)).get_content().strip() == "Thanks!"
    html = msg.get_body(("html",))
    assert "cid:logo" in html.get_content()
    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    assert attachments["receipt.pdf"].get_content() == b"%PDF-1.4"
    inline = [p for p in msg.walk() if p["Content-ID"] == "<logo>"]
    assert len(inline) == 1 and inline[0].get_content() == b"\x89PNG fake image bytes"


def test_status_is_visible_to_its_client_only(api, client_key, services):
    sent = api("POST", "/v1/messages", {"from": "a@example.com", "to": "b@example.org", "text": "hi"}, key=client_key)
    message_id = sent.json()["id"]
    # The sender sees it
    got = api("GET", f"/v1/messages/{message_id}", key=client_key)
    assert got.status == 200
    assert got.json()["state"] == "queued"
    assert got.json()["recipients"] == [
        {"address": "b@example.org", "state": "pending", "reply": None, "updated_at": None, "provider_message_id": None}
    ]
    # Another client does not
    _, other = services.clients.create("other", ["example.net"])
    assert api("GET", f"/v1/messages/{message_id}", key=other).status == 404
    assert api("GET", "/v1/messages/not-an-id", key=client_key).status == 404


def test_large_message_goes_to_s3_with_a_pointer(api, client_key, queue_messages, aws):
    big = base64.b64encode(b"x" * 400_000).decode()
    body = {
        "from": "a@example.com",
        "to": "b@example.org",
        "text": "see attached",
        "attachments": [{"filename": "big.bin", "content": big}],
    }
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 202, response.text
    (queued,) = queue_messages()
    assert queued["payload"]["kind"] == "s3"
    obj = boto3.client("s3").get_object(Bucket=queued["payload"]["bucket"], Key=queued["payload"]["key"])
    data = obj["Body"].read()
    assert hashlib.sha256(data).hexdigest() == queued["sha256"] and len(data) == queued["size"]
    assert obj.get("ServerSideEncryption") == "aws:kms"


def test_scheduled_message(api, client_key, queue_messages):
    send_at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    response = api(
        "POST",
        "/v1/messages",
        {"from": "a@example.com", "to": "b@example.org", "text": "later", "send_at": send_at},
        key=client_key,
    )
    assert response.status == 202
    assert response.json()["status"] == "scheduled"


def test_raw_message_is_canonicalised_and_keeps_its_headers(api, client_key, queue_messages):
    raw = (
        b"From: Ops <ops@example.com>\nTo: x@example.org\nSubject: raw\n"
        b"Message-ID: <mine@example.com>\n\nline one\nline two\n"
    )
    body = {
        "raw": {
            "data": base64.b64encode(raw).decode(),
            "mail_from": "bounces@example.com",
            "rcpt_to": ["x@example.org", "hidden@example.net"],
        }
    }
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 202, response.text
    (queued,) = queue_messages()
    data = base64.b64decode(queued["payload"]["data"])
    assert data.startswith(b"Date: ")  # added because it was missing
    assert b"Message-ID: <mine@example.com>\r\n" in data  # theirs, kept
    assert data.endswith(b"\r\n\r\nline one\r\nline two\r\n")
    assert queued["rcpt_to"] == ["x@example.org", "hidden@example.net"]


def test_addresses_may_be_written_as_name_and_angle_address(api, client_key, queue_messages):
    body = {"from": "Shop Örders <orders@example.com>", "to": ['"Doe, Jane" <jane@example.org>', "bob@example.org"],
            "reply_to": "Help <help@example.com>", "subject": "s", "text": "t"}  # fmt: skip
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 202, response.text
    (queued,) = queue_messages()
    assert queued["rcpt_to"] == ["jane@example.org", "bob@example.org"]
    msg = _parse(queued)
    assert msg["From"] == "Shop Örders <orders@example.com>"
    assert msg["To"].addresses[0].display_name == "Doe, Jane"
    assert msg["Reply-To"] == "Help <help@example.com>"


def test_a_line_break_in_a_name_written_inline_is_refused(api, client_key, queue_messages):
    body = {"from": "Eve\r\nBcc: victim@example.net <orders@example.com>", "to": "a@example.org", "text": "t"}
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "from.name"
    assert queue_messages() == []


def test_a_raw_messages_bcc_header_is_not_relayed(api, client_key, queue_messages):
    data = (b"From: app@example.com\r\nTo: to@example.org\r\nBcc: Secret <secret@example.net>,\r\n"
            b" other@example.net\r\nSubject: s\r\n\r\nbody\r\n")  # fmt: skip
    body = {"raw": {"data": base64.b64encode(data).decode(), "mail_from": "app@example.com",
                    "rcpt_to": ["to@example.org", "secret@example.net", "other@example.net"]}}  # fmt: skip
    assert api("POST", "/v1/messages", body, key=client_key).status == 202
    (queued,) = queue_messages()
    raw = base64.b64decode(queued["payload"]["data"])
    assert b"secret@example.net" not in raw and b"other@example.net" not in raw
    assert raw.endswith(b"To: to@example.org\r\nSubject: s\r\n\r\nbody\r\n")
    assert queued["rcpt_to"] == ["to@example.org", "secret@example.net", "other@example.net"]


def test_a_long_quoted_non_ascii_name_never_swallows_the_next_address(api, client_key, queue_messages):
    """CPython's folder pulled '<00@example.net>,' into the encoded-word of such a name; mailrelay writes
    address lists itself."""
    from email.header import decode_header, make_header

    name = '中\xa0\xa0𐀀\xa0\xa0𐀀𐀀𐀀𐀀0\xa0\xa0𐀀𐀀"""=x\u200b00\xa0\xa0ࠀ'
    body = {"from": "app@example.com", "to": ["alice@example.com", {"email": "00@example.net", "name": name},
            "bob@example.com"], "text": "hi"}  # fmt: skip
    assert api("POST", "/v1/messages", body, key=client_key).status == 202
    (queued,) = queue_messages()
    msg = _parse(queued)
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com", "00@example.net", "bob@example.com"]
    raw_to = email.message_from_bytes(base64.b64decode(queued["payload"]["data"]), policy=email.policy.compat32)["To"]
    assert str(make_header(decode_header(raw_to))) == f"alice@example.com, {name} <00@example.net>, bob@example.com"
