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
from urllib.parse import quote

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
        if _looks_encoded(name):
            phrase = Header(name, "utf-8").encode(linesep=linesep)
        elif (_UTF8_ATOMS if self._utf8 else _ATOMS).fullmatch(name):
            phrase = name
        elif name.isascii() or self._utf8:
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            phrase = Header(name, "utf-8").encode(linesep=linesep)
        return f"{phrase} <{addr_spec}>"


class EncodedText:
    """An unstructured header (Subject, a custom header) written as RFC 2047 base64 encoded-words, all of it.

    For text the email package's folder would not keep exact: text holding "=?" would be taken for an
    encoded-word (or merge with one the folder writes next to it), and where the folder encodes
    non-ASCII words itself it drops white space between two of them. Encoded here, the text decodes
    to exactly what the client gave.
    """

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def __str__(self) -> str:
        return self._value

    def fold(self, *, policy: Policy) -> str:
        encoded = Header(self._value, "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


def _looks_encoded(text: str) -> bool:
    """Text that holds the opening of encoded-word syntax, which decoders would act on."""
    return "=?" in text


def _text_field(name: str, value: str, *, utf8: bool) -> str | EncodedText:
    """``value`` as the email package would write it, unless it could not arrive exact that way."""
    return EncodedText(name, value) if _looks_encoded(value) or not (utf8 or value.isascii()) else value


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
        msg["Subject"] = _text_field("Subject", request.subject, utf8=utf8)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id_header
    for name, value in request.headers.items():
        _set_custom(msg, name, _text_field(name, value, utf8=utf8))

    files = attachment_files(request, {}) if files is None else files
    inline = [f for f in files if f[0].content_id]
    regular = [f for f in files if not f[0].content_id]
    _set_body(msg, request.text, request.html, inline)
    for file in regular:
        _add(msg, file, inline_part=False)
    return msg.as_bytes()


def _set_custom(msg: EmailMessage, name: str, value: str | EncodedText) -> None:
    # The header registry parses some names as structured fields, and its parser can raise on text
    # the model accepts (IndexError for "Resent-From: <" in 3.11): that is the client's error, not ours.
    if isinstance(value, EncodedText):
        msg[name] = value
        return
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
    payload = part.get_payload()
    added = payload[-1] if isinstance(payload, list) else part
    assert isinstance(added, EmailMessage)
    _set_disposition(added, "inline" if inline_part else "attachment", attachment.filename)


class Disposition:
    """Content-Disposition with the file name as an RFC 2231 extended parameter, for names that look
    encoded: the email package writes an ASCII name as a quoted-string, in which lenient readers (the
    email package's own among them) decode RFC 2047; a 2231 value is percent-encoded and read as is."""

    name = "Content-Disposition"

    def __init__(self, kind: str, filename: str) -> None:
        self._kind = kind
        self._filename = filename

    def __str__(self) -> str:
        return f"{self._kind}; filename*=utf-8''{quote(self._filename, safe=_ATTRIBUTE_CHARS)}"

    def fold(self, *, policy: Policy) -> str:
        encoded = quote(self._filename, safe=_ATTRIBUTE_CHARS)
        # RFC 2231 §3 continuations keep each line short; a chunk never splits a %XX escape.
        chunks = re.findall(r"(?:%[0-9A-F]{2}|[^%]){1,20}", encoded)
        params = [f"filename*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{c}" for i, c in enumerate(chunks)]
        return f"{self.name}: {self._kind};" + ";".join(f"{policy.linesep} {p}" for p in params) + policy.linesep


# RFC 2231 attribute-char: what may stand unencoded in an extended parameter value.
_ATTRIBUTE_CHARS = "!#$&+-.^_`|~"


def _set_disposition(part: EmailMessage, kind: str, filename: str) -> None:
    if _looks_encoded(filename):
        del part["Content-Disposition"]
        part["Content-Disposition"] = Disposition(kind, filename)


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
    _set_disposition(part, "attachment", filename)
    return part
