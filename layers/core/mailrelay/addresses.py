"""Address syntax and sender policy: strict, never lenient, used by every entry point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from mailrelay.errors import InvalidRequest

# Characters that may never appear in anything that ends up in a header or an SMTP command.
_FORBIDDEN = {chr(c) for c in range(0x00, 0x20) if c != 0x09} | {"\x7f"}
_FORBIDDEN |= {chr(c) for c in range(0x80, 0xA0)} | {"\u2028", "\u2029"}
# Lone UTF-16 surrogates (JSON can carry them as \uD800 escapes) cannot be encoded at all.
_SURROGATES = {chr(c) for c in range(0xD800, 0xE000)}
_FORBIDDEN |= _SURROGATES


def find_surrogate(value: str) -> str | None:
    for ch in value:
        if ch in _SURROGATES:
            return ch
    return None


def find_forbidden_char(value: str) -> str | None:
    """The first line-breaking or control character in ``value`` (TAB is allowed), if any."""
    for ch in value:
        if ch in _FORBIDDEN:
            return ch
    return None


def has_encoded_word(value: str) -> bool:
    """True when ``value`` holds "=?", the opening of RFC 2047 encoded-word syntax.

    The email package decodes encoded-words wherever it parses a header (display names, unstructured
    text, even a local part), so "=?utf-8?q?=0D=0ABcc=3A...?=" would reach the wire as a real line
    break; and a lone "=?" next to text that mailrelay itself encodes makes a malformed encoded-word.
    Clients send Unicode and mailrelay encodes; refusing every "=?" is a deliberate superset.
    """
    return "=?" in value


def describe_char(ch: str) -> str:
    return f"U+{ord(ch):04X}"


@dataclass(frozen=True)
class MailAddress:
    """A validated addr-spec. ``smtp`` is what goes on the wire (ASCII when it can be)."""

    smtp: str
    local: str
    domain: str  # lower-case, IDNA (ASCII) when possible
    needs_smtputf8: bool


@lru_cache(maxsize=4096)
def _validate(value: str) -> MailAddress:
    info = validate_email(
        value,
        check_deliverability=False,
        allow_smtputf8=True,
        allow_quoted_local=False,
        allow_domain_literal=False,
        allow_display_name=False,
    )
    ascii_domain = info.ascii_domain or info.domain
    if info.ascii_email:
        return MailAddress(info.ascii_email, info.local_part, ascii_domain.lower(), False)
    return MailAddress(f"{info.local_part}@{ascii_domain}", info.local_part, ascii_domain.lower(), True)


def parse_address(value: str, field_path: str) -> MailAddress:
    """Validate one addr-spec; refuse source routes, %-hacks and bang paths outright."""
    bad = find_forbidden_char(value)
    if bad is not None:
        raise InvalidRequest.at(field_path, f"control or line-break character {describe_char(bad)} is not allowed")
    if len(value) > 320:
        raise InvalidRequest.at(field_path, "address is longer than 320 characters")
    if has_encoded_word(value):
        raise InvalidRequest.at(field_path, "'=?' (RFC 2047 encoded-word syntax) is not accepted in an address")
    if value.startswith("@") or ":" in value:
        raise InvalidRequest.at(field_path, "source routes are not accepted")
    local, _, _ = value.rpartition("@")
    if "%" in local or "!" in local:
        raise InvalidRequest.at(field_path, "'%' and '!' routing in the local part is not accepted")
    try:
        return _validate(value)
    except EmailNotValidError as exc:
        raise InvalidRequest.at(field_path, f"not a valid email address: {exc}") from None


def sender_allowed(address: MailAddress, allowed: tuple[str, ...] | list[str]) -> bool:
    """True when ``address`` is listed exactly, or its domain is listed (no implicit subdomains)."""
    whole = address.smtp.lower()
    for entry in allowed:
        entry = entry.lower()
        if "@" in entry:
            if entry == whole:
                return True
        elif entry == address.domain:
            return True
    return False


def normalise_allow_entry(value: str) -> str:
    """An allow-list entry: a full address or a bare domain, stored lower-case (IDNA for domains)."""
    value = value.strip()
    if "@" in value:
        return parse_address(value, "allow_from").smtp.lower()
    probe = parse_address(f"postmaster@{value}", "allow_from")
    return probe.domain
