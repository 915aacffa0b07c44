"""Property tests: hostile send requests are refused cleanly, and accepted ones cannot inject headers."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email import policy
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from pydantic import ValidationError

from mailrelay.addresses import find_forbidden_char, has_encoded_word, parse_address
from mailrelay.compose import from_request
from mailrelay.errors import MailrelayError
from mailrelay.models.send_request import Mailbox, SendRequest, _mailbox
from mailrelay.settings import Settings
from tests.security.strategies import (
    ENCODED_WORDS,
    LINE_BREAKERS,
    addresses,
    header_blocks,
    json_values,
    one_hostile_field,
    send_requests,
)

SETTINGS = Settings()
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PARSER = BytesParser(policy=policy.default)
TEXT_PARSER = Parser(policy=policy.default)
HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")
TOP_LEVEL = {"from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version"}
MIME_HEADERS = {"content-type", "content-transfer-encoding", "content-disposition", "content-id", "mime-version"}


def submit(data: Any) -> bytes | None:
    """The API's path from parsed JSON to canonical bytes; None when refused the expected way."""
    note(f"input: {data!r}")
    try:
        request = SendRequest.model_validate(data)
        return from_request(request, SETTINGS, NOW).content.read()
    except (ValidationError, MailrelayError) as exc:
        note(f"refused: {exc}")
        return None


def assert_canonical(data: bytes) -> None:
    assert b"\x00" not in data
    assert data.endswith(b"\r\n")
    assert data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n"), "bare CR or LF"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def header_section(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    assert end > 0, "no header/body separator"
    return data[:end]


def header_names_of(block: bytes) -> list[str]:
    """Every field name in a header block, asserting each line is a field or a continuation."""
    names = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            assert names, "continuation line before the first header"
            continue
        assert HEADER_LINE.match(line), f"not a header line: {line!r}"
        names.append(line.split(b":", 1)[0].decode("ascii").lower())
    return names


def folded(value: str) -> str:
    """A header value compared modulo white space.

    Unfolding (RFC 5322) and the stdlib parser collapse and trim white space (U+00A0 included), and the
    stdlib's encoded-word folder may add a space between encoded-words of a long non-ASCII display
    name. None of that changes which header holds which text, which is what these properties check.
    """
    return "".join(value.split())


def expected_mailbox(box: Any) -> tuple[str, str, str]:
    """What the request asked for, read the way the model reads it ("Name <address>" strings included)."""
    mailbox = Mailbox.model_validate(_mailbox(box))
    parsed = parse_address(mailbox.email, "")
    return folded(mailbox.name or ""), parsed.local, parsed.domain


def header_mailboxes(msg: EmailMessage, name: str) -> list[tuple[str, str, str]]:
    header = msg[name]
    # SMTPUTF8 messages carry UTF-8 local parts, which RFC 5322 alone calls a defect.
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    assert not defects, f"{name}: {defects}"
    found: list[Address] = list(header.addresses)
    return [(folded(a.display_name), a.username, a.domain.lower()) for a in found]


def assert_round_trip(request: dict[str, Any], data: bytes) -> None:
    assert_canonical(data)
    custom = {n.lower(): v for n, v in request.get("headers", {}).items()}
    names = header_names_of(header_section(data))
    note(f"header names: {names}")
    assert set(names) <= TOP_LEVEL | MIME_HEADERS | set(custom), "unexpected header field"
    for once in ("from", "date", "message-id", *custom):
        assert names.count(once) == 1, once
    assert "bcc" not in names

    # An SMTPUTF8 message has raw UTF-8 headers (RFC 6532); the bytes parser only knows RFC 5322.
    msg = PARSER.parsebytes(data) if data.isascii() else TEXT_PARSER.parsestr(data.decode("utf-8"))
    # Address lists are written by mailrelay, not by the stdlib's folder (CPython gh-100884 encoded a list
    # comma; long quoted non-ASCII names swallowed the next address): no example is excused.
    assert isinstance(msg, EmailMessage)
    assert msg["Message-ID"] is not None and msg["Message-ID"].endswith(f"@{SETTINGS.message_id_domain}>")
    assert msg["Bcc"] is None
    assert header_mailboxes(msg, "From") == [expected_mailbox(request["from"])]
    for field, header in (("to", "To"), ("cc", "Cc"), ("reply_to", "Reply-To")):
        if request.get(field):
            assert header_mailboxes(msg, header) == [expected_mailbox(b) for b in request[field]]
        else:
            assert msg[header] is None
    if request.get("subject") is not None:
        assert folded(str(msg["Subject"])) == folded(request["subject"])
    for name, value in request.get("headers", {}).items():
        assert folded(str(msg[name])) == folded(value), name
    for part in msg.walk():
        if part is msg:
            continue
        part_names = {k.lower() for k in part}
        assert part_names <= MIME_HEADERS, f"unexpected header in a MIME part: {part_names}"
    filenames = sorted(folded(p.get_filename()) for p in msg.walk() if p.get_filename() is not None)
    assert filenames == sorted(folded(a["filename"]) for a in request.get("attachments", []))


@given(json_values())
def test_arbitrary_json_fails_only_with_expected_errors(data: Any) -> None:
    """Whatever JSON arrives, only a validation or mailrelay error escapes; accepted bytes are canonical."""
    built = submit(data)
    if built is not None:
        assert_canonical(built)


@given(st.one_of(send_requests(hostile=True), one_hostile_field()))
def test_hostile_requests_fail_cleanly_or_cannot_inject(request: dict[str, Any]) -> None:
    """Refused with a validation/mailrelay error, or built into a message with exactly the fields asked for."""
    built = submit(request)
    if built is not None:
        assert_round_trip(request, built)


@given(send_requests(hostile=False))
def test_accepted_requests_round_trip_through_the_stdlib_parser(request: dict[str, Any]) -> None:
    built = submit(request)
    note(repr(built))
    assert built is not None, "a well-formed request was refused"
    assert_round_trip(request, built)


_FIELDS = {
    "subject": lambda req, bad: {**req, "subject": f"Hello{bad}Bcc: evil@attacker.example"},
    "from.name": lambda req, bad: {**req, "from": {"email": "alice@example.com", "name": f"A{bad}B"}},
    "to[0].name": lambda req, bad: {**req, "to": [{"email": "bob@example.org", "name": f"B{bad}"}]},
    "to[0].email": lambda req, bad: {**req, "to": [f"{bad}bob@example.org"]},
    "headers.X-Tag": lambda req, bad: {**req, "headers": {"X-Tag": f"v{bad}X-Injected: 1"}},
    "attachments[0].filename": lambda req, bad: {**req, "attachments": [{"filename": f"a{bad}.txt", "content": ""}]},
}


@pytest.mark.parametrize("field", sorted(_FIELDS))
@given(bad=st.sampled_from(LINE_BREAKERS), base=send_requests(hostile=False))
def test_line_breaks_are_refused_at_their_field(field: str, bad: str, base: dict[str, Any]) -> None:
    _assert_refused_at(field, _FIELDS[field](base, bad))


@given(bad=st.sampled_from(ENCODED_WORDS), base=send_requests(hostile=False))
def test_encoded_words_are_refused_in_addresses(bad: str, base: dict[str, Any]) -> None:
    """Text may hold encoded-word syntax (it is sent encoded); an address may not (it is never encoded)."""
    _assert_refused_at("to[0].email", _FIELDS["to[0].email"](base, bad))


def _assert_refused_at(field: str, request: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        SendRequest.model_validate(request)
    locations = {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}
    dotted = field.replace("[", ".").replace("]", "")
    assert any(loc.startswith(dotted) or loc == dotted.rsplit(".", 1)[0] for loc in locations), locations


@given(send_requests(hostile=True))
def test_every_accepted_header_value_is_free_of_line_breaks(request: dict[str, Any]) -> None:
    """The model is the gate: nothing it accepts carries a control or line-break character."""
    try:
        parsed = SendRequest.model_validate(request)
    except ValidationError:
        return
    texts = [parsed.subject or "", *parsed.headers, *parsed.headers.values()]
    texts += [b.name or "" for b in (parsed.from_, *parsed.to, *parsed.cc, *parsed.bcc, *parsed.reply_to) if b]
    texts += [a.filename for a in parsed.attachments]
    emails = [b.email for b in (parsed.from_, *parsed.to, *parsed.cc, *parsed.bcc, *parsed.reply_to) if b]
    assert all(find_forbidden_char(t) is None for t in texts + emails)
    assert not any(has_encoded_word(e) for e in emails)


@given(
    st.fixed_dictionaries(
        {
            "data": st.one_of(header_blocks(), st.binary(max_size=200)).map(lambda b: base64.b64encode(b).decode()),
            "mail_from": addresses(hostile=True),
            "rcpt_to": st.lists(addresses(hostile=True), min_size=1, max_size=3),
        }
    )
)
def test_raw_messages_fail_cleanly_or_are_queued_canonical(raw: dict[str, Any]) -> None:
    built = submit({"raw": raw})
    if built is not None:
        assert_canonical(built)
        assert b"\r\nmessage-id:" in b"\r\n" + header_section(built).lower()
