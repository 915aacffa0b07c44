"""The one strict reader of a message's header section: it alone decides what the headers are.

Authorisation and relaying must see the same header fields. The standard library's parser ends
the header section at the first line it does not recognise (``X-Mailer : x``, a name with white
space before the colon, which RFC 5322's obsolete syntax allows and Postfix accepts), so any
``From:`` after such a line would be relayed without ever being checked. This reader therefore
splits the section itself, line by line, and refuses every line that is neither a field
(``name:``, the name being printable ASCII without ':') nor a continuation. Only the value of an
address field is read, by a mailbox grammar that is linear in its input, and only once it is capped
in size. The standard library's address parser is not used: it is lenient (it decodes encoded-words
and drops comments even inside an addr-spec, so "app@=?utf-8?q?example.com?=" reads as
app@example.com) and quadratic on some inputs (CPython gh-136063: runs of dots, comments, quotes or
backslashes cost seconds at 40 KB).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from mailrelay.addresses import MailAddress, parse_address
from mailrelay.errors import InvalidRequest

MAX_HEADER_SECTION_OCTETS = 64 * 1024
MAX_ADDRESS_FIELD_OCTETS = 2 * 1024
# Each address field costs a parse; Resent-* blocks may repeat, but not without bound.
MAX_SENDER_FIELDS = 8

# Fields that name who sent the message: every address in them must be allowed for the client.
SENDER_FIELDS = ("from", "sender", "resent-from", "resent-sender")
# Verdicts that only a receiving server may write (RFC 8601 §5, RFC 8617): a submission that carries
# them is forging another server's authentication result ("dmarc=pass header.from=victim.com").
RECEIVER_ONLY_FIELDS = frozenset({"authentication-results", "arc-authentication-results"})
# Blind copies live in the envelope only: a message must not show its readers who else received it.
BLIND_FIELDS = frozenset({"bcc", "resent-bcc"})

_FIELD_NAME = re.compile(rb"[!-9;-~]+:")

# The mailbox grammar of RFC 5322 §3.4, restricted to what senders write today: a display name of
# atoms, quoted strings, encoded-words and lone dots ("John Q. Public"), then <addr-spec>; or a bare
# addr-spec; either followed by simple comments. Atoms take UTF-8 as RFC 6532 allows.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]++"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*+"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*+"'
_WORD = rf"(?:{_ATOM}|{_QUOTED})"
_PHRASE = rf"{_WORD}(?:[ \t]*+(?:{_WORD}|\.))*+"
_COMMENTS = r"(?:\([^()\\\r\n]*+\)[ \t]*+)*+"
_MAILBOX = re.compile(
    rf"[ \t]*+(?:(?:{_PHRASE})?+[ \t]*+<(?P<angle>{_DOT_ATOM}@{_DOT_ATOM})>|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM}))"
    rf"[ \t]*+{_COMMENTS}"
)
_SPACE_BEFORE_COLON = re.compile(rb"[!-9;-~]+[ \t]+:")


@dataclass(frozen=True)
class HeaderField:
    name: str  # as written
    value: bytes  # unfolded, without the leading white space after the colon

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class HeaderSummary:
    from_addresses: tuple[MailAddress, ...]
    sender: MailAddress | None
    has_message_id: bool
    has_date: bool
    # Resent-From and Resent-Sender addresses (RFC 5322 §3.6.6), held to the same rule as From.
    resent: tuple[MailAddress, ...] = ()
    fields: tuple[HeaderField, ...] = ()

    def sender_addresses(self) -> tuple[MailAddress, ...]:
        """Every address that claims authorship or sending: each must be allowed for the client."""
        return (*self.from_addresses, *([self.sender] if self.sender else []), *self.resent)

    def has_non_ascii(self) -> bool:
        return any(not f.value.isascii() for f in self.fields)

    def subject(self) -> str | None:
        """The Subject as a reader sees it (RFC 2047 decoded; undecodable parts as written), for listings."""
        field = next((f for f in self.fields if f.key == "subject"), None)
        if field is None:
            return None
        text = field.value.decode("utf-8", "replace")
        with contextlib.suppress(HeaderParseError, LookupError, UnicodeError, ValueError):
            text = str(make_header(decode_header(text)))
        return text[:998]


def _section(data: bytes) -> bytes | None:
    """The header lines without their last CRLF; None when no blank line ends them within the cap."""
    if data.startswith(b"\r\n"):
        return b""
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER_SECTION_OCTETS + 4)
    if end >= 0:
        return data[:end]
    if len(data) <= MAX_HEADER_SECTION_OCTETS + 2:
        return data.removesuffix(b"\r\n")  # a message without a body
    return None


def split_fields(data: bytes, field: str) -> tuple[HeaderField, ...]:
    """The header fields of canonical (CRLF) ``data``, refusing anything a lenient parser would guess at."""
    section = _section(data)
    if section is None:
        raise InvalidRequest.at(field, f"the header section is larger than {MAX_HEADER_SECTION_OCTETS} octets")
    fields: list[tuple[str, list[bytes]]] = []
    for number, line in enumerate(section.split(b"\r\n") if section else (), start=1):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise InvalidRequest.at(field, "the header section starts with a continuation line")
            fields[-1][1].append(line)
            continue
        name = _FIELD_NAME.match(line)
        if name is None:
            raise InvalidRequest.at(field, _bad_line(line, number))
        fields.append((line[: name.end() - 1].decode("ascii"), [line[name.end() :]]))
    return tuple(HeaderField(name, b"".join(parts).lstrip(b" \t")) for name, parts in fields)


def without_fields(data: bytes, summary: HeaderSummary, keys: frozenset[str]) -> bytes:
    """``data`` without the header fields named in ``keys`` (continuation lines too), the rest byte for byte.

    ``summary`` is what read_headers found in ``data``: the section is known to be well formed.
    """
    if not any(f.key in keys for f in summary.fields):
        return data
    section = _section(data)
    assert section is not None
    kept: list[bytes] = []
    dropping = False
    for line in section.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            dropping = line.split(b":", 1)[0].decode("ascii").lower() in keys
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + data[len(section) :]


def _bad_line(line: bytes, number: int) -> str:
    if _SPACE_BEFORE_COLON.match(line):
        shown = line.split(b":", 1)[0].decode("ascii")
        return f"header line {number}: white space before the colon ({shown!r}) is not accepted"
    if line.startswith(b"From "):
        return f"header line {number}: a Unix 'From ' line is not a header field"
    return (
        f"header line {number} is neither a header field ('Name: value') nor a continuation"
        " (is the blank line between the headers and the body missing?)"
    )


def mailbox_list(text: str) -> list[str] | None:
    """The addr-specs of an RFC 5322 mailbox-list, or None when ``text`` is not one.

    Deliberately narrower than RFC 5322: no group syntax, no nested comments, no obsolete routes or
    empty list elements. Every quantifier is possessive, so the cost is linear in the length.
    """
    found: list[str] = []
    pos, end = 0, len(text)
    while True:
        match = _MAILBOX.match(text, pos)
        if match is None:
            return None
        found.append(match.group("angle") or match.group("bare"))
        pos = match.end()
        if pos == end:
            return found
        if text[pos] != ",":
            return None
        pos += 1


def _mailboxes(item: HeaderField, field: str) -> tuple[MailAddress, ...]:
    """Every mailbox in an address field, each checked as the addr-spec the wire carries."""
    name = item.name
    if len(item.value) > MAX_ADDRESS_FIELD_OCTETS:
        raise InvalidRequest.at(field, f"the {name} header is longer than {MAX_ADDRESS_FIELD_OCTETS} octets")
    try:
        text = item.value.decode("utf-8")  # RFC 6532: UTF-8 is allowed in header values
    except UnicodeDecodeError:
        raise InvalidRequest.at(field, f"the {name} header is not valid UTF-8") from None
    specs = mailbox_list(text)
    if specs is None:
        raise InvalidRequest.at(
            field, f"the {name} header is not a plain list of addresses (name <address>, or address)"
        )  # fmt: skip
    return tuple(parse_address(spec, field) for spec in specs)


def read_headers(data: bytes, field: str) -> HeaderSummary:
    """Read and police the header section of canonical ``data``; raise InvalidRequest on anything odd."""
    fields = split_fields(data, field)
    by_key: dict[str, list[HeaderField]] = {}
    for item in fields:
        by_key.setdefault(item.key, []).append(item)
    for key in RECEIVER_ONLY_FIELDS & by_key.keys():
        name = by_key[key][0].name
        raise InvalidRequest.at(field, f"the {name} header is written by receiving servers, never by a sender")
    if sum(len(by_key.get(k, ())) for k in SENDER_FIELDS) > MAX_SENDER_FIELDS:
        raise InvalidRequest.at(field, f"more than {MAX_SENDER_FIELDS} From, Sender and Resent-* sender headers")
    from_fields = by_key.get("from", [])
    if len(from_fields) != 1:
        raise InvalidRequest.at(field, "the message must have exactly one From header")
    senders = by_key.get("sender", [])
    if len(senders) > 1:
        raise InvalidRequest.at(field, "the message has more than one Sender header")
    sender = _mailboxes(senders[0], field) if senders else ()
    if len(sender) > 1:
        raise InvalidRequest.at(field, "the Sender header must hold one address")
    from_addresses = _mailboxes(from_fields[0], field)
    resent = tuple(
        address
        for key in ("resent-from", "resent-sender")
        for item in by_key.get(key, ())
        for address in _mailboxes(item, field)
    )
    return HeaderSummary(
        from_addresses=from_addresses,
        sender=sender[0] if sender else None,
        has_message_id="message-id" in by_key,
        has_date="date" in by_key,
        resent=resent,
        fields=fields,
    )
