"""Builds the RFC 5322 message for a structured send request with the standard library."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime

from mailrelay.addresses import parse_address
from mailrelay.canonical import canonicalize
from mailrelay.errors import InvalidRequest
from mailrelay.models.send_request import Attachment, Mailbox, SendRequest

# 7bit bodies (quoted-printable/base64) reach every upstream, with or without 8BITMIME.
_ASCII_POLICY = email_policy.SMTP.clone(cte_type="7bit")
_UTF8_POLICY = email_policy.SMTPUTF8.clone(cte_type="7bit")


def needs_smtputf8(request: SendRequest) -> bool:
    boxes = [request.from_, *request.to, *request.cc, *request.reply_to]
    return any(parse_address(b.email, "").needs_smtputf8 for b in boxes if b is not None)


# A display name that can stand as written: atoms separated by single spaces (RFC 5322 §3.2.5; RFC 6532
# adds every non-ASCII character to atext when the message may carry UTF-8).
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_ATOMS = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_UTF8_ATOMS = re.compile(rf"[{_ATEXT}\x80-\U0010ffff]+(?: [{_ATEXT}\x80-\U0010ffff]+)*")


class AddressField:
    """An address header (From, To, Cc, Reply-To) written here rather than by the email package's folder.

    CPython's folder mangles some lists: a long non-ASCII display name with quotes can pull the next
    ``<address>,`` into its encoded-word, and a list comma can end up encoded. The email package takes a
    header object as it is (EmailPolicy.header_store_parse: "If the input value has a name attribute and it
    matches name ignoring case, the value is returned unchanged") and folds it by calling its ``fold``, so
    this writes each mailbox on its own line: the name as atoms, a quoted-string, or (non-ASCII without
    SMTPUTF8) base64 encoded-words from email.header, which RFC 2047 §5(3) allows in a phrase.
    """

    def __init__(self, name: str, boxes: list[Mailbox], *, utf8: bool) -> None:
        self.name = name
        self._mailboxes = [(box.name or "", parse_address(box.email, "")) for box in boxes]
        self._utf8 = utf8

    def __str__(self) -> str:
        return ", ".join(f"{n} <{a.local}@{a.domain}>" if n else f"{a.local}@{a.domain}" for n, a in self._mailboxes)

    def fold(self, *, policy: Policy) -> str:
        linesep = policy.linesep
        parts = [self._mailbox(name, f"{address.local}@{address.domain}", linesep) for name, address in self._mailboxes]
        return f"{self.name}: " + f",{linesep} ".join(parts) + linesep

    def _mailbox(self, name: str, addr_spec: str, linesep: str) -> str:
        if not name:
            return addr_spec
        if (_UTF8_ATOMS if self._utf8 else _ATOMS).fullmatch(name):
            phrase = name
        elif name.isascii() or self._utf8:
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            phrase = Header(name, "utf-8").encode(linesep=linesep)
        return f"{phrase} <{addr_spec}>"


File = tuple[Attachment, bytes]


def attachment_files(request: SendRequest, uploads: Mapping[str, bytes]) -> list[File]:
    """Each attachment with its bytes: decoded from ``content``, or the upload its ``upload_id`` names."""
    return [
        (a, uploads[a.upload_id] if a.upload_id is not None else base64.b64decode(a.content or ""))
        for a in request.attachments
    ]


def build_message(
    request: SendRequest, *, message_id_header: str, date: datetime, files: list[File] | None = None
) -> bytes:
    """The message as canonical CRLF bytes. Bcc never appears in it (it lives in the envelope)."""
    assert request.from_ is not None
    utf8 = needs_smtputf8(request)
    msg = EmailMessage(policy=_UTF8_POLICY if utf8 else _ASCII_POLICY)
    msg["From"] = AddressField("From", [request.from_], utf8=utf8)
    for name, boxes in (("To", request.to), ("Cc", request.cc), ("Reply-To", request.reply_to)):
        if boxes:
            msg[name] = AddressField(name, boxes, utf8=utf8)
    if request.subject is not None:
        msg["Subject"] = request.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id_header
    for name, value in request.headers.items():
        _set_custom(msg, name, value)

    files = attachment_files(request, {}) if files is None else files
    inline = [f for f in files if f[0].content_id]
    regular = [f for f in files if not f[0].content_id]
    _set_body(msg, request.text, request.html, inline)
    for file in regular:
        _add(msg, file, inline_part=False)
    return msg.as_bytes()


def _set_custom(msg: EmailMessage, name: str, value: str) -> None:
    # The header registry parses some names as structured fields, and its parser can raise on text
    # the model accepts (IndexError for "Resent-From: <" in 3.11): that is the client's error, not ours.
    try:
        msg[name] = value
        msg[name].defects  # noqa: B018 - forces the lazy parse here, not in the generator
    except Exception:
        raise InvalidRequest.at(f"headers.{name}", "the value is not valid for this header") from None


def _set_body(msg: EmailMessage, text: str | None, html: str | None, inline: list[File]) -> None:
    if text is not None:
        msg.set_content(text)
        if html is None:
            # Inline parts without HTML to reference them are still attached, as related parts.
            for file in inline:
                _add(msg, file, inline_part=True)
            return
        msg.add_alternative(html, subtype="html")
        parts = msg.get_payload()
        assert isinstance(parts, list)
        html_part = parts[-1]
        assert isinstance(html_part, EmailMessage)
        for file in inline:
            _add(html_part, file, inline_part=True)
        return
    assert html is not None
    msg.set_content(html, subtype="html")
    for file in inline:
        _add(msg, file, inline_part=True)


def _add(part: EmailMessage, file: File, *, inline_part: bool) -> None:
    attachment, data = file
    maintype, _, subtype = attachment.content_type.partition("/")
    if maintype.lower() == "message" and not inline_part:
        if part.get_content_type() != "multipart/mixed":
            part.make_mixed()
        part.attach(_message_part(data, subtype.lower(), attachment.filename))
        return
    if inline_part:
        part.add_related(
            data, maintype, subtype, cid=f"<{attachment.content_id}>",
            disposition="inline", filename=attachment.filename,
        )  # fmt: skip
    else:
        part.add_attachment(data, maintype, subtype, filename=attachment.filename)


def _message_part(data: bytes, subtype: str, filename: str) -> EmailMessage:
    """An attached message (an .eml file). RFC 2046 §5.2.1 forbids base64 for message/rfc822, so it
    travels as 7-bit text; one with 8-bit content travels as message/global, which RFC 6532 §3.5
    allows to be base64-encoded."""
    field = f"attachments[{filename}]"
    text = canonicalize(data, bare_newlines="normalize", field=field)
    part = EmailMessage(policy=_ASCII_POLICY)
    if text.isascii():
        part["Content-Type"] = f"message/{subtype}"
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(text.decode("ascii"))
    elif subtype in ("rfc822", "global"):
        encoded = base64.encodebytes(text).replace(b"\n", b"\r\n").decode("ascii")
        part["Content-Type"] = "message/global"
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(encoded)
    else:
        raise InvalidRequest.at(field, f"message/{subtype} must be 7-bit text (RFC 2046 §5.2)")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part
