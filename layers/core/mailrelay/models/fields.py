"""Reusable annotated types: every header-bearing string is checked once, here."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

from mailrelay.addresses import describe_char, find_forbidden_char, find_surrogate, parse_address
from mailrelay.errors import InvalidRequest


def _encodable(value: str) -> str:
    bad = find_surrogate(value)
    if bad is not None:
        raise ValueError(f"unpaired UTF-16 surrogate {describe_char(bad)} is not allowed")
    return value


def _header_safe(value: str) -> str:
    _encodable(value)
    bad = find_forbidden_char(value)
    if bad is not None:
        raise ValueError(f"control or line-break character {describe_char(bad)} is not allowed")
    return value


def _email(value: str) -> str:
    try:
        return parse_address(value, "").smtp
    except InvalidRequest as exc:
        raise ValueError(exc.problems[0].detail) from None


_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")  # RFC 5322 ftext, kept short enough to fold


def _header_name(value: str) -> str:
    if not _FIELD_NAME.match(value):
        raise ValueError("header names are 1-76 printable ASCII characters without ':' or spaces")
    return value


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (RFC 4648, no line breaks)") from None
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


HeaderText = Annotated[str, AfterValidator(_header_safe)]
BodyText = Annotated[str, AfterValidator(_encodable)]
EmailAddress = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
Base64Text = Annotated[str, AfterValidator(_base64)]
OneOrMany = BeforeValidator(_one_or_many)

# No path separators (a recipient's mail client must not write outside its folder) and no <>" which
# MIME parameter parsers treat as syntax.
Filename = Annotated[HeaderText, Field(min_length=1, max_length=255, pattern=r'^[^/\\<>"]+$')]


def _not_multipart(value: str) -> str:
    if value.lower().startswith("multipart/"):
        raise ValueError("multipart/* is a message's structure, not a file type; send it as application/octet-stream")
    return value


ContentType = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"),
    AfterValidator(_not_multipart),
]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 date-time with its offset: pydantic alone would also take Unix seconds ("0.5")."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("an RFC 3339 date-time with a time zone, e.g. 2026-12-02T09:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
