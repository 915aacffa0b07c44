"""Properties of the one header-section reader: it agrees with an independent reading of the same bytes,
its cost grows linearly up to its caps, and internationalised senders round-trip through it."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header

import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from mailrelay.addresses import parse_address
from mailrelay.compose import from_request
from mailrelay.errors import InvalidRequest
from mailrelay.message_headers import (
    BLIND_FIELDS,
    MAX_ADDRESS_FIELD_OCTETS,
    mailbox_list,
    read_headers,
    without_fields,
)
from mailrelay.models.send_request import SendRequest
from mailrelay.settings import Settings

SENDER_NAMES = {b"from", b"sender", b"resent-from", b"resent-sender"}

_NAMES = [b"From", b"from", b"FROM", b"Sender", b"sender", b"Resent-From", b"Resent-Sender", b"X-Mailer", b"To"]
_SEPARATORS = [b":", b": ", b" :", b" : ", b"\t:", b":\t"]
_VALUES = [
    b"app@example.com",
    b"App <app@example.com>",
    b"ceo@victim.com",
    b"CEO <ceo@victim.com>",
    b'"app@example.com" <ceo@victim.com>',
    b'"Doe, Jane" <jane@example.com>, ceo@victim.com',
    b"=?utf-8?q?Jos=C3=A9?= <app@example.com>",
    "José <app@example.com>".encode(),
    "äpp@example.com".encode(),
    b"app@example.com (the app)",
    b"app(x)@example.com",
    b"app@=?utf-8?q?example.com?=",
    b"undisclosed:;",
    b"x",
]
_ODD_LINES = [b"From ceo@victim.com Mon Jan  1 00:00:00 2024", b" folded continuation", b"no colon here", b""]


@st.composite
def header_sections(draw: st.DrawFn) -> bytes:
    """Header sections as a forger writes them: sender fields in any case, spacing before colons,
    continuations, Unix From lines, lists, display names that look like addresses."""
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(_ODD_LINES)))
            continue
        name = draw(st.sampled_from(_NAMES))
        separator = draw(st.sampled_from(_SEPARATORS[:2] * 3 + _SEPARATORS))  # mostly well-formed
        line = name + separator + draw(st.sampled_from(_VALUES))
        if draw(st.integers(0, 5)) == 0:
            line += b"\r\n " + draw(st.sampled_from([b"(folded)", b"x@victim.com", b"more"]))
        lines.append(line)
    return b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"


def line_based_senders(data: bytes) -> tuple[int, set[str]]:
    """An independent reading, as a header recogniser such as Postfix's sees the bytes: a field name is
    what comes before the first colon, white space around it ignored. Returns the number of From fields
    and every address in any sender field (quoted strings and comments removed first)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    logical: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1] += line
        else:
            logical.append(line)
    froms, found = 0, set()
    for line in logical:
        name, colon, value = line.partition(b":")
        key = name.strip().lower()
        if not colon or key not in SENDER_NAMES:
            continue
        froms += key == b"from"
        value = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", value)
        value = re.sub(rb"\([^()]*\)", b"", value)
        for spec in re.findall(rb"[^\s<>,\"()]+@[^\s<>,\"()]+", value):
            found.add(parse_address(spec.decode(), "x").smtp)
    return froms, found


@given(header_sections())
def test_what_the_reader_accepts_an_independent_reading_sees_the_same(data: bytes) -> None:
    note(repr(data))
    try:
        summary = read_headers(data, "raw.data")
    except InvalidRequest:
        return
    froms, senders = line_based_senders(data)
    assert froms == 1
    assert {a.smtp for a in summary.sender_addresses()} == senders


@given(header_sections())
def test_what_the_reader_accepts_the_standard_library_reads_alike(data: bytes) -> None:
    """A second reader's view of the fields: the stdlib sees every field ours saw, none hidden."""
    try:
        summary = read_headers(data, "raw.data")
    except InvalidRequest:
        return
    parsed = email.message_from_bytes(data, policy=policy.compat32)
    assert [k.lower() for k in parsed] == [f.key for f in summary.fields]


# Shapes that make CPython's address parser quadratic (gh-136063), and ordinary ones.
SHAPES: dict[str, Callable[[int], str]] = {
    "dots": lambda n: "." * n,
    "comments": lambda n: "a@b.example " + "(x)" * (n // 3),
    "open quotes": lambda n: '"' * n,
    "backslashes": lambda n: "\\" * n,
    "spaced dots": lambda n: ". " * (n // 2),
    "words": lambda n: "a " * (n // 2) + "<a@b.example>",
    "list": lambda n: ",".join(["a@b.example"] * (n // 12)),
    "quoted names": lambda n: '"a" ' * (n // 4) + "<a@b.example>",
}


def _cost(work: Callable[[], object]) -> float:
    """CPU seconds per call: the best of several timed batches, each long enough to measure."""
    best = float("inf")
    for _ in range(5):
        calls, start = 0, time.process_time()
        while (spent := time.process_time() - start) < 0.02:
            work()
            calls += 1
        best = min(best, spent / calls)
    return best


def _read(value: str) -> Callable[[], object]:
    data = b"From: " + value.encode() + b"\r\nTo: x@y.example\r\n\r\nbody\r\n"

    def run() -> object:
        try:
            return read_headers(data, "raw.data")
        except InvalidRequest:
            return None

    return run


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_reading_an_address_field_grows_linearly_up_to_its_cap(shape: str) -> None:
    small, large = MAX_ADDRESS_FIELD_OCTETS // 8, MAX_ADDRESS_FIELD_OCTETS - 10
    ratio = _cost(_read(SHAPES[shape](large))) / _cost(_read(SHAPES[shape](small)))
    # 8x the input: linear is about 8x the cost, quadratic about 64x.
    assert ratio < 16, f"{shape}: {ratio:.1f}x the cost for 8x the input"


def test_reading_a_whole_header_section_grows_linearly_up_to_its_cap() -> None:
    def section(fields: int) -> bytes:
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"(. " * 250) for i in range(fields))
        return b"From: " + SHAPES["comments"](2000).encode() + b"\r\n" + filler + b"\r\nbody\r\n"

    small, large = section(10), section(80)  # about 8 KB and 61 KB
    ratio = _cost(lambda: read_headers(large, "x")) / _cost(lambda: read_headers(small, "x"))
    assert ratio < 16, f"{ratio:.1f}x the cost for {len(large) / len(small):.1f}x the input"


def test_a_cap_is_refused_before_any_parsing() -> None:
    just_over = "." * (MAX_ADDRESS_FIELD_OCTETS + 1)
    with pytest.raises(InvalidRequest, match="longer than 2048 octets"):
        _read_strict(just_over)


def _read_strict(value: str) -> object:
    return read_headers(b"From: " + value.encode() + b"\r\n\r\nx\r\n", "raw.data")


_LETTERS = st.characters(categories=("Lu", "Ll", "Lo"), max_codepoint=0x2FFFF)
names = st.text(_LETTERS, min_size=1, max_size=20).map(str.strip).filter(bool)
local_parts = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüéçñøßπжж中"), min_size=1, max_size=12)


def valid_or_skip(address: str) -> str:
    """The normalised form of ``address``; examples the address rules refuse are not this test's subject."""
    try:
        return parse_address(address, "from").smtp
    except InvalidRequest:
        assume(False)
        raise


@given(names, local_parts)
def test_internationalised_senders_round_trip_through_the_api(name: str, local: str) -> None:
    address = f"{local}@example.com"
    expected = valid_or_skip(address)
    request = SendRequest.model_validate({"from": {"email": address, "name": name}, "to": "x@y.example", "text": "t"})
    settings = Settings.model_validate({"MAILRELAY_MESSAGE_ID_DOMAIN": "example.com"})
    data = from_request(request, settings, datetime.now(UTC)).content.read()
    summary = read_headers(data, "from")
    assert [a.smtp for a in summary.from_addresses] == [expected]
    # The reference decoder follows RFC 2047 §6.2 (white space between adjacent encoded-words is not
    # text); policy.default's parser adds a space there when a long name is folded across words.
    raw_from = email.message_from_string(data.decode("utf-8"), policy=policy.compat32)["From"]
    assert str(make_header(decode_header(raw_from))) == f"{name} <{expected}>"


@given(names, local_parts)
def test_internationalised_raw_headers_are_read_as_written(name: str, local: str) -> None:
    address = f"{local}@example.com"
    expected = valid_or_skip(address)
    quoted = '"' + name + '"'
    for written in (f"{quoted} <{address}>", address):
        summary = read_headers(f"From: {written}\r\n\r\nbody\r\n".encode(), "raw.data")
        assert [a.smtp for a in summary.from_addresses] == [expected]
        assert mailbox_list(written) == [address]


@given(header_sections(), st.lists(st.sampled_from([b"Bcc: a@example.net", b"bcc:b@example.net,\r\n c@example.net"])))
def test_removing_blind_copies_keeps_every_other_field_as_written(data: bytes, blind: list[bytes]) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    data = b"\r\n".join([head, *blind]) + b"\r\n\r\n" + body
    try:
        summary = read_headers(data, "raw.data")
    except InvalidRequest:
        return
    stripped = without_fields(data, summary, BLIND_FIELDS)
    after = read_headers(stripped, "raw.data")
    assert [f for f in summary.fields if f.key != "bcc"] == list(after.fields)
    assert stripped.endswith(b"\r\n\r\n" + body)
