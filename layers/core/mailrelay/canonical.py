"""Canonical wire form of a message: CRLF line endings only, no NUL, lines of at most 998 octets.

Everything queued is in this form, so delivery can hand the bytes to any SMTP server and
no stray CR or LF can ever end DATA early there (SMTP smuggling).
"""

from __future__ import annotations

import re
from typing import Literal

from mailrelay.errors import BareNewline, InvalidRequest, LineTooLong

MAX_LINE_OCTETS = 998
_SPLIT_BELOW = 256 * 1024  # smaller messages are split into lines at once (faster, and the copy is small)
_ANY_EOL = re.compile(rb"\r\n|\r|\n")

BareNewlinePolicy = Literal["reject", "normalize"]


def has_bare_newline(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return data.count(b"\r") != crlf or data.count(b"\n") != crlf


def canonicalize(data: bytes, *, bare_newlines: BareNewlinePolicy, field: str = "message") -> bytes:
    """Return ``data`` in canonical form, or raise InvalidRequest saying what is wrong with it."""
    if b"\x00" in data:
        raise InvalidRequest.at(field, "the message contains a NUL byte")
    if has_bare_newline(data):
        if bare_newlines == "reject":
            raise BareNewline.at(field, "the message contains a bare CR or LF (lines must end with CRLF)")
        data = _ANY_EOL.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if len(data) > MAX_LINE_OCTETS and _longest_line(data) > MAX_LINE_OCTETS:
        raise LineTooLong.at(field, f"a line is longer than {MAX_LINE_OCTETS} octets")
    return data


def _longest_line(data: bytes) -> int:
    if len(data) <= _SPLIT_BELOW:
        return max(map(len, data.split(b"\r\n")))
    # A large message is scanned in place: split() would hold a second copy of it, one object per line.
    longest, pos, end = 0, 0, len(data)
    while pos <= end:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            eol = end
        longest = max(longest, eol - pos)
        pos = eol + 2
    return longest


def canonical_lines(line: bytes, *, bare_newlines: BareNewlinePolicy, field: str = "message") -> list[bytes]:
    """One received line (ending with CRLF) in canonical form: itself, or the lines a bare CR or LF
    in it separates under the ``normalize`` policy; raise InvalidRequest as canonicalize() would."""
    if b"\x00" in line:
        raise InvalidRequest.at(field, "the message contains a NUL byte")
    text = line[:-2]
    if b"\r" in text or b"\n" in text:
        if bare_newlines == "reject":
            raise BareNewline.at(field, "the message contains a bare CR or LF (lines must end with CRLF)")
        lines = [part + b"\r\n" for part in _ANY_EOL.split(text)]
    else:
        lines = [line]
    if len(line) > MAX_LINE_OCTETS + 2 and any(len(part) > MAX_LINE_OCTETS + 2 for part in lines):
        raise LineTooLong.at(field, f"a line is longer than {MAX_LINE_OCTETS} octets")
    return lines
