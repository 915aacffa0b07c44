"""Strict reading of the header section of a complete message, for sender policy."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import AddressHeader
from email.parser import BytesHeaderParser

from mailrelay.addresses import MailAddress, parse_address
from mailrelay.errors import InvalidRequest

_PARSER = BytesHeaderParser(policy=email_policy.default)


@dataclass(frozen=True)
class HeaderSummary:
    from_addresses: tuple[MailAddress, ...]
    sender: MailAddress | None
    has_message_id: bool
    has_date: bool


def header_block(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 4]


def _mailboxes(header: object, name: str, field: str) -> tuple[MailAddress, ...]:
    """Every mailbox in an address header, refusing anything a lenient parser would guess at."""
    defects: tuple[object, ...] = getattr(header, "defects", ())
    if not isinstance(header, AddressHeader) or defects:
        raise InvalidRequest.at(field, f"the {name} header is not a valid address list")
    if any(group.display_name is not None for group in header.groups):
        raise InvalidRequest.at(field, f"the {name} header may not use group syntax")
    found = []
    for address in header.addresses:
        if not address.username or not address.domain:
            raise InvalidRequest.at(field, f"the {name} header has an incomplete address")
        found.append(parse_address(f"{address.username}@{address.domain}", field))
    return tuple(found)


def read_headers(data: bytes, field: str) -> HeaderSummary:
    try:
        headers = _PARSER.parsebytes(header_block(data))
        # Header objects are parsed lazily, on each access: a hostile value can make those raise too
        # (e.g. "From: x:;" followed by a blank continuation line raises AttributeError in 3.11).
        from_values = headers.get_all("From") or []
        senders = headers.get_all("Sender") or []
        has_message_id = headers.get("Message-ID") is not None
        has_date = headers.get("Date") is not None
    except Exception as exc:  # the parser is lenient by design; anything it raises means garbage
        raise InvalidRequest.at(field, f"the header section cannot be parsed: {type(exc).__name__}") from None
    if len(from_values) != 1:
        raise InvalidRequest.at(field, "the message must have exactly one From header")
    if len(senders) > 1:
        raise InvalidRequest.at(field, "the message has more than one Sender header")
    from_addresses = _mailboxes(from_values[0], "From", field)
    if not from_addresses:
        raise InvalidRequest.at(field, "the From header has no address")
    sender = _mailboxes(senders[0], "Sender", field) if senders else ()
    if len(sender) > 1:
        raise InvalidRequest.at(field, "the Sender header must hold one address")
    return HeaderSummary(
        from_addresses=from_addresses,
        sender=sender[0] if sender else None,
        has_message_id=has_message_id,
        has_date=has_date,
    )
