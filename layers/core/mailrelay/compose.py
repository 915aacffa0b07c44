"""Turns what arrived (a JSON send request, raw bytes) into a Submission in canonical form."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime

from mailrelay.canonical import canonicalize
from mailrelay.errors import InvalidRequest, MessageTooLarge, TooManyRecipients
from mailrelay.ids import message_id_header, new_message_id
from mailrelay.message_data import MessageData
from mailrelay.message_headers import (
    BLIND_FIELDS,
    MAX_HEADER_SECTION_OCTETS,
    HeaderSummary,
    read_headers,
    without_fields,
)
from mailrelay.mime_builder import File, attachment_files, build_message
from mailrelay.models.send_request import SendRequest
from mailrelay.settings import Settings
from mailrelay.smtp_controls import SmtpControls, control_keys, read_controls
from mailrelay.submission import FieldNames, IngressKey, Submission

_RAW_FIELDS = FieldNames(envelope_from="raw.mail_from", recipients="raw.rcpt_to", headers="raw.data")


def missing_headers(summary: HeaderSummary, message_id: str, domain: str, now: datetime) -> bytes:
    """The Message-ID and Date lines a message lacks (RFC 6409 §8), to prepend to it."""
    extra = b""
    if not summary.has_message_id:
        extra += f"Message-ID: {message_id_header(message_id, domain)}\r\n".encode("ascii")
    if not summary.has_date:
        extra += f"Date: {format_datetime(now)}\r\n".encode("ascii")
    return extra


def _estimated_size(request: SendRequest, files: list[File]) -> int:
    # MIME's base64 makes each attachment a third larger, and the limit counts the message as sent.
    attachments = sum(len(data) * 4 // 3 for _, data in files)
    return attachments + len((request.text or "").encode()) + len((request.html or "").encode())


def _estimated_header_octets(request: SendRequest) -> int:
    boxes = (request.from_, *request.to, *request.cc, *request.reply_to)
    # An encoded display name (quoted-printable or base64) is at most about three times its UTF-8 size.
    addresses = sum(len(b.email) + 3 * len((b.name or "").encode()) + 4 for b in boxes if b is not None)
    custom = sum(len(n) + 3 * len(v.encode()) + 4 for n, v in request.headers.items())
    return addresses + custom + 3 * len((request.subject or "").encode()) + 512


def check_before_build(request: SendRequest, settings: Settings) -> None:
    """Counts and sizes, refused before the MIME build (whose cost grows with what it is given)."""
    count = request.recipient_count()
    if count > settings.max_recipients:
        raise TooManyRecipients(count, settings.max_recipients)
    estimate = _estimated_header_octets(request)
    if estimate > MAX_HEADER_SECTION_OCTETS:
        raise InvalidRequest.at(
            "to", f"the header section would be about {estimate} octets; the limit is {MAX_HEADER_SECTION_OCTETS}"
        )


def from_request(
    request: SendRequest, settings: Settings, now: datetime, uploads: Mapping[str, bytes] | None = None
) -> Submission:
    """``uploads``: the bytes of every upload the request's attachments name, already fetched and checked."""
    message_id = new_message_id()
    tags = {t.name: t.value for t in request.tags}
    common = {
        "message_id": message_id, "source": "api", "send_at": request.send_at, "expires_at": request.expires_at,
        "delivery": request.delivery, "tags": tags, "metadata": dict(request.metadata), "subject": request.subject,
    }  # fmt: skip
    if request.raw is not None:
        raw = request.raw
        if len(raw.data) * 3 // 4 > settings.max_message_bytes:
            raise MessageTooLarge(len(raw.data) * 3 // 4, settings.max_message_bytes)
        data = canonicalize(base64.b64decode(raw.data), bare_newlines="normalize", field="raw.data")
        summary = read_headers(data, _RAW_FIELDS.headers)  # parsed once: check() reuses it
        data = without_fields(data, summary, BLIND_FIELDS)
        data = missing_headers(summary, message_id, settings.message_id_domain, now) + data
        return Submission(
            mail_from=raw.mail_from, rcpt_to=tuple(raw.rcpt_to), content=MessageData(data), smtputf8=True,
            fields=_RAW_FIELDS, headers=summary, **common,  # type: ignore[arg-type]
        )  # fmt: skip
    assert request.from_ is not None
    check_before_build(request, settings)
    files = attachment_files(request, uploads or {})
    estimate = _estimated_size(request, files)
    if estimate > settings.max_message_bytes:
        raise MessageTooLarge(estimate, settings.max_message_bytes)
    built = build_message(
        request, message_id_header=message_id_header(message_id, settings.message_id_domain), date=now, files=files
    )
    rcpt = tuple(dict.fromkeys(b.email for b in (*request.to, *request.cc, *request.bcc)))
    return Submission(
        mail_from=request.from_.email, rcpt_to=rcpt,
        content=MessageData(canonicalize(built, bare_newlines="reject", field="message")),
        smtputf8=True,
        **common,  # type: ignore[arg-type]
    )  # fmt: skip


def from_smtp(
    *, mail_from: str, rcpt_to: list[str], data: MessageData, settings: Settings, now: datetime,
    smtputf8: bool, received: bytes = b"",
) -> Submission:  # fmt: skip
    """A message the SMTP bridge received in canonical form (mailrelay.incoming): blind copies
    removed, Message-ID/Date and Received added to its head; the body is not copied."""
    message_id = new_message_id()
    # The header section is parsed once (check() reuses the summary: the lines added here are neither
    # From nor Sender).
    summary = read_headers(data.head, "message")
    controls = read_controls(summary.fields)
    ingress = _ingress_key(summary, controls, data) if settings.dedup_window_seconds > 0 else None
    head = without_fields(data.head, summary, BLIND_FIELDS | control_keys(summary.fields))
    extra = missing_headers(summary, message_id, settings.message_id_domain, now)
    if received or extra or head is not data.head:
        data = data.with_head(b"".join((received, extra, head)))
    return Submission(
        message_id=message_id, mail_from=mail_from, rcpt_to=tuple(rcpt_to), content=data,
        source="smtp", smtputf8=smtputf8, headers=summary, ingress=ingress,
        tags=controls.tags, metadata=controls.metadata, send_at=controls.send_at, delivery=controls.delivery,
        fields=FieldNames(envelope_from="MAIL FROM", recipients="RCPT TO", headers="header",
                          schedule="X-Mailrelay-Send-At"),
    )  # fmt: skip


def _ingress_key(summary: HeaderSummary, controls: SmtpControls, data: MessageData) -> IngressKey | None:
    """A re-send is the same client with the same idempotency key, or else the same Message-ID, and
    the same content as the client sent it (mailrelay's own lines, Received: among them, differ)."""
    if controls.idempotency_key is not None:
        return IngressKey(f"idempotency-key:{controls.idempotency_key}", data.sha256(), "X-Mailrelay-Idempotency-Key")
    message_id = next((f.value for f in summary.fields if f.key == "message-id"), None)
    if message_id is None or not message_id.strip():
        return None
    return IngressKey(f"message-id:{message_id.strip().decode('utf-8', 'replace')}", data.sha256())
