"""Property tests: canonical form, strict address parsing and strict header reading under hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from mailrelay.addresses import find_forbidden_char, has_encoded_word, parse_address
from mailrelay.canonical import MAX_LINE_OCTETS, canonicalize
from mailrelay.errors import InvalidRequest
from mailrelay.message_headers import read_headers
from tests.security.strategies import TRICKY_ADDRESSES, VALID_ADDRESSES, addresses, header_blocks, hostile_text

# Bytes a smuggler would write: every line-ending variant, NUL, dots at line starts, long lines.
_PIECES = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r", b".", b"\r\n.\r\n", b"\n.\n", b"\x00", b"a", b" ", b"\t", b"\xff"]
raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=20)), max_size=40).map(b"".join),
    st.tuples(st.integers(990, 1005), st.sampled_from([b"\r\n", b"\n", b""])).map(lambda t: b"x" * t[0] + t[1]),
)


def assert_canonical(data: bytes) -> None:
    assert b"\x00" not in data
    assert data.endswith(b"\r\n")
    assert data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n"), "bare CR or LF"
    assert max(len(line) for line in data.split(b"\r\n")) <= MAX_LINE_OCTETS


@given(raw_bytes)
def test_canonicalize_normalizes_or_refuses_and_is_idempotent(data: bytes) -> None:
    try:
        once = canonicalize(data, bare_newlines="normalize")
    except InvalidRequest as exc:
        note(str(exc))
        assert b"\x00" in data or max(len(line) for line in data.replace(b"\r", b"\n").split(b"\n")) > 998
        return
    assert_canonical(once)
    assert canonicalize(once, bare_newlines="normalize") == once
    assert canonicalize(once, bare_newlines="reject") == once  # canonical bytes pass the strict policy too
    # Normalising only changes line endings: the text between them is untouched.
    assert once.replace(b"\r\n", b"") == data.replace(b"\r\n", b"").replace(b"\r", b"").replace(b"\n", b"")


@given(raw_bytes)
def test_canonicalize_reject_policy_never_rewrites_a_bare_line_break(data: bytes) -> None:
    try:
        out = canonicalize(data, bare_newlines="reject")
    except InvalidRequest:
        return
    assert_canonical(out)
    assert out in (data, data + b"\r\n")  # accepted bytes are kept as they are (at most a final CRLF added)


@given(st.one_of(addresses(hostile=True), hostile_text(30), st.text(max_size=40)))
def test_parse_address_refuses_cleanly_and_accepts_only_plain_addr_specs(value: str) -> None:
    try:
        parsed = parse_address(value, "to[0]")
    except InvalidRequest as exc:
        assert exc.problems and exc.problems[0].field == "to[0]"
        return
    assert parsed.smtp == f"{parsed.local}@{parsed.domain}"
    assert find_forbidden_char(parsed.smtp) is None and not has_encoded_word(parsed.smtp)
    assert not any(c in parsed.smtp for c in ' <>()[]:;,"\\') and parsed.smtp.count("@") == 1
    assert not set("%!") & set(parsed.local)
    assert parse_address(parsed.smtp, "to[0]") == parsed  # the normal form is a fixed point


def test_tricky_addresses_are_all_refused() -> None:
    for value in TRICKY_ADDRESSES:
        try:
            parse_address(value, "from")
        except InvalidRequest:
            continue
        raise AssertionError(f"accepted {value!r}")
    assert all(parse_address(v, "from") for v in VALID_ADDRESSES)


@given(header_blocks())
def test_read_headers_refuses_cleanly_and_never_guesses_a_sender(data: bytes) -> None:
    note(repr(data))
    try:
        summary = read_headers(data, "raw.data")
    except InvalidRequest as exc:
        assert exc.problems and exc.problems[0].field == "raw.data"
        return
    assert summary.from_addresses
    for address in (*summary.from_addresses, *([summary.sender] if summary.sender else [])):
        assert parse_address(address.smtp, "x") == address


@pytest.mark.parametrize(
    "from_value",
    [
        b'"alice@example.com" <evil@attacker.example>',
        b"alice@example.com <evil@attacker.example>",
        b"=?utf-8?q?alice=40example.com?= <evil@attacker.example>",
        b"evil@attacker.example (alice@example.com)",
        b"Alice <alice@example.com>, Eve <evil@attacker.example>",
        b"alice@example.com,evil@attacker.example",
    ],
)
def test_a_from_header_never_yields_only_the_address_it_pretends_to_be(from_value: bytes) -> None:
    """Policy checks every From address; a lookalike display name or comment is never mistaken for one."""
    try:
        summary = read_headers(b"From: " + from_value + b"\r\nSubject: x\r\n\r\nbody\r\n", "raw.data")
    except InvalidRequest:
        return
    assert "evil@attacker.example" in {a.smtp for a in summary.from_addresses}


@given(st.binary(max_size=400))
def test_read_headers_on_arbitrary_bytes_raises_only_invalid_request(data: bytes) -> None:
    with contextlib.suppress(InvalidRequest):
        read_headers(data, "message")
