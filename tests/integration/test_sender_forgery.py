"""Findings of an outside review, each replayed through the real API handler: forged senders hidden from
the check, parser blow-ups, batches retried after an outage, internationalised senders, attached messages."""

from __future__ import annotations

import base64
import email
from email import policy

import pytest
from botocore.exceptions import ClientError

VALID = {"from": "app@example.com", "to": ["rcpt@example.org"], "subject": "hi", "text": "hello"}

# White space before a colon made the standard library end the header section early: everything after
# it was relayed but never checked.
HIDDEN_SENDERS = [
    b"From: app@example.com\r\nX-Mailer : x\r\nFrom: CEO <ceo@victim.com>\r\nSender: ceo@victim.com\r\n"
    b"To: x@y.org\r\n\r\nhi\r\n",
    b"From: app@example.com\r\nFrom : CEO <ceo@victim.com>\r\nTo: x@y.org\r\n\r\nhi\r\n",
    b"From: app@example.com\r\nfrom:ceo@victim.com\r\nTo: x@y.org\r\n\r\nhi\r\n",
    b"From ceo@victim.com Mon Jan  1 00:00:00 2024\r\nFrom: app@example.com\r\nTo: x@y.org\r\n\r\nhi\r\n",
    b" folded: x\r\nFrom: app@example.com\r\n\r\nhi\r\n",
    b"From: app@=?utf-8?q?example.com?=\r\nTo: x@y.org\r\n\r\nhi\r\n",
    b"From: app(comment)@example.com\r\nTo: x@y.org\r\n\r\nhi\r\n",
]


def raw_body(data: bytes, mail_from: str = "app@example.com", rcpt: str = "x@y.org") -> dict:
    return {"raw": {"data": base64.b64encode(data).decode(), "mail_from": mail_from, "rcpt_to": [rcpt]}}


@pytest.mark.parametrize("data", HIDDEN_SENDERS, ids=lambda d: d[:40].decode(errors="replace"))
def test_a_header_section_a_lenient_parser_would_misread_is_refused(api, client_key, queue_messages, data):
    response = api("POST", "/v1/messages", raw_body(data), key=client_key)
    assert response.status == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "raw.data"
    assert queue_messages() == []


def test_the_refusal_names_the_offending_line(api, client_key):
    response = api("POST", "/v1/messages", raw_body(HIDDEN_SENDERS[0]), key=client_key)
    assert "white space before the colon ('X-Mailer ')" in response.json()["errors"][0]["detail"]


def test_a_from_header_in_any_case_is_counted(api, client_key, queue_messages):
    data = b"FROM: app@example.com\r\nfRoM: ceo@victim.com\r\n\r\nhi\r\n"
    response = api("POST", "/v1/messages", raw_body(data), key=client_key)
    assert response.status == 422
    assert "exactly one From" in response.json()["errors"][0]["detail"]
    assert queue_messages() == []


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Resent-From: CEO <ceo@victim.com>", 403),
        (b"Resent-Sender: ceo@victim.com", 403),
        (b"Authentication-Results: mx.example; dmarc=pass header.from=victim.com", 422),
        (b"ARC-Authentication-Results: i=1; mx.example; dmarc=pass", 422),
    ],
)
def test_other_sender_claims_in_a_raw_message_are_policed(api, client_key, queue_messages, header, status):
    data = b"From: app@example.com\r\n" + header + b"\r\nTo: x@y.org\r\n\r\nhi\r\n"
    response = api("POST", "/v1/messages", raw_body(data), key=client_key)
    assert response.status == status, response.text
    assert queue_messages() == []


def test_a_resent_from_the_client_may_use_is_accepted(api, client_key, queue_messages):
    data = b"From: someone@elsewhere.example\r\nResent-From: desk@example.com\r\nTo: x@y.org\r\n\r\nhi\r\n"
    # From names the original author; only a Resent-From of ours makes this a legitimate re-send... but
    # From is still a sender claim and must be allowed too.
    assert api("POST", "/v1/messages", raw_body(data), key=client_key).status == 403
    data = b"From: app@example.com\r\nResent-From: desk@example.com\r\nTo: x@y.org\r\n\r\nhi\r\n"
    assert api("POST", "/v1/messages", raw_body(data), key=client_key).status == 202
    assert len(queue_messages()) == 1


@pytest.mark.parametrize(
    "name", ["Resent-From", "Resent-Sender", "Resent-Date", "Authentication-Results", "ARC-Seal", "Orig-Date"]
)
def test_sender_claims_and_verdicts_are_not_custom_headers(api, client_key, queue_messages, name):
    response = api("POST", "/v1/messages", {**VALID, "headers": {name: "<"}}, key=client_key)
    assert response.status == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("headers")
    assert queue_messages() == []


def test_a_header_value_the_mime_library_cannot_parse_is_a_422_inside_a_batch(api, client_key, queue_messages):
    items = [VALID, {**VALID, "headers": {"Resent-From": "<"}}, VALID]
    response = api("POST", "/v1/messages/batch", {"messages": items}, key=client_key)
    assert response.status == 200
    results = response.json()["results"]
    assert [("id" in r) for r in results] == [True, False, True]
    assert results[1]["error"]["status"] == 422
    assert len(queue_messages()) == 2


def test_address_headers_and_the_header_section_are_capped_before_parsing(api, client_key, queue_messages):
    folded_dots = b"\r\n ".join([b"." * 900] * 45)  # ~40 KB: seconds of CPU in the stdlib's address parser
    response = api("POST", "/v1/messages", raw_body(b"From: " + folded_dots + b"\r\n\r\nhi\r\n"), key=client_key)
    assert response.status == 422
    assert "longer than 2048 octets" in response.json()["errors"][0]["detail"]
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 900) for i in range(80))
    response = api(
        "POST", "/v1/messages", raw_body(b"From: app@example.com\r\n" + many + b"\r\nhi\r\n"), key=client_key
    )
    assert response.status == 422
    assert "header section is larger than 65536 octets" in response.json()["errors"][0]["detail"]
    assert queue_messages() == []


def test_recipient_counts_are_refused_before_the_message_is_built(api, client_key, queue_messages, monkeypatch):
    import mailrelay.compose

    def must_not_build(*args, **kwargs):
        raise AssertionError("the MIME build ran before the counts were checked")

    monkeypatch.setattr(mailrelay.compose, "build_message", must_not_build)
    name = "N" * 256
    boxes = [{"email": f"u{i}@example.org", "name": name} for i in range(250)]
    response = api("POST", "/v1/messages", {**VALID, "to": boxes, "cc": boxes}, key=client_key)
    assert response.status == 422
    assert "500 recipients" in response.json()["errors"][0]["detail"]
    response = api("POST", "/v1/messages", {**VALID, "reply_to": boxes}, key=client_key)
    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "reply_to"
    assert queue_messages() == []


def test_internationalised_senders_are_accepted_and_flagged_for_smtputf8(api, client_key, queue_messages):
    utf8_local = api("POST", "/v1/messages", {**VALID, "from": "äpp@example.com"}, key=client_key)
    assert utf8_local.status == 202, utf8_local.text
    named = api("POST", "/v1/messages", {**VALID, "from": {"email": "app@example.com", "name": "José"}}, key=client_key)
    assert named.status == 202, named.text
    raw = api("POST", "/v1/messages", raw_body("From: José <app@example.com>\r\n\r\nhi\r\n".encode()), key=client_key)
    assert raw.status == 202, raw.text
    flags = {m["id"]: m["smtputf8"] for m in queue_messages()}
    # an encoded display name is ASCII on the wire; a UTF-8 local part or raw UTF-8 header is not
    assert flags == {utf8_local.json()["id"]: True, named.json()["id"]: False, raw.json()["id"]: True}


def test_an_attached_message_arrives_as_message_rfc822(api, client_key, queue_messages):
    eml = b"From: old@example.net\nTo: me@example.org\nSubject: forwarded\n\nbody line\n"
    body = {**VALID, "attachments": [{"filename": "old.eml", "content_type": "message/rfc822",
                                      "content": base64.b64encode(eml).decode()}]}  # fmt: skip
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 202, response.text
    (queued,) = queue_messages()
    parsed = email.message_from_bytes(base64.b64decode(queued["payload"]["data"]), policy=policy.default)
    attached = next(p for p in parsed.walk() if p.get_content_type() == "message/rfc822")
    assert attached["Content-Transfer-Encoding"] == "7bit"
    assert attached.get_filename() == "old.eml"
    inner = attached.get_content()
    assert inner["Subject"] == "forwarded"
    assert inner.get_content().splitlines() == ["body line"]


def test_a_multipart_attachment_type_is_refused_precisely(api, client_key, queue_messages):
    body = {**VALID, "attachments": [{"filename": "x", "content_type": "multipart/mixed", "content": "eHg="}]}
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "attachments[0].content_type"
    assert queue_messages() == []


def test_a_batch_retried_with_its_key_after_an_outage_queues_only_what_was_missing(api, client_key, queue_messages):
    sqs = api.operations.submissions.queue._client()
    calls = {"n": 0}

    def second_send_fails(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "SendMessage")

    sqs.meta.events.register("before-call.sqs.SendMessage", second_send_fails)
    items = [{**VALID, "subject": f"item {i}"} for i in range(3)]
    key = {"Idempotency-Key": "batch-1"}
    first = api("POST", "/v1/messages/batch", {"messages": items}, key=client_key, headers=key).json()["results"]
    assert "id" in first[0] and "id" in first[2]
    assert first[1]["error"]["status"] == 503
    sqs.meta.events.unregister("before-call.sqs.SendMessage", second_send_fails)

    retry = api("POST", "/v1/messages/batch", {"messages": items}, key=client_key, headers=key).json()["results"]
    assert retry[0] == first[0] and retry[2] == first[2]  # the first answers, replayed
    assert "id" in retry[1]
    assert sorted(m["id"] for m in queue_messages()) == sorted(r["id"] for r in retry)

    again = api("POST", "/v1/messages/batch", {"messages": items}, key=client_key, headers=key).json()["results"]
    assert again == retry
    other = api("POST", "/v1/messages/batch", {"messages": items[:2]}, key=client_key, headers=key)
    assert other.status == 409
    assert queue_messages() == []
