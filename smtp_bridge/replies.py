"""Every SMTP reply the bridge chooses, and the one mapping from core errors to replies.

Rule: a failure of ours is 451 4.3.0 (the client keeps the message and retries); only a
message or command that is itself unacceptable gets a 5xx.
"""

from __future__ import annotations

import re

from mailrelay.errors import (
    BareNewline,
    InvalidControlHeader,
    InvalidRequest,
    LineTooLong,
    MailrelayError,
    MessageTooLarge,
    SenderNotAllowed,
    TemporarilyUnavailable,
    TooManyRecipients,
    Unauthenticated,
)
from mailrelay.models.status import SmtpReply
from smtp_bridge.budget import InsufficientStorage

AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_THROTTLED = "421 4.7.0 Too many failed authentication attempts; try again later"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure; try again later"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
BARE_NEWLINE = "550 5.5.2 Bare CR or LF in message data; lines must end with CRLF"
LINE_TOO_LONG = "500 5.5.2 Line too long (see RFC 5321 4.5.3.1.6)"
# RFC 3463 4.3.1 "mail system full"; RFC 5321 lists 452 for MAIL and DATA. Clients retry it.
INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage; try again later"
LOCAL_ERROR = "451 4.3.0 Temporary local problem; message not accepted, please retry"
NOT_ALLOWED_NETWORK = "554 5.7.1 Cleartext submission is only open to allowlisted networks"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down; try again later"
TIMEOUT = "421 4.4.2 Timeout exceeded; closing connection"
SESSION_TOO_OLD = "421 4.4.2 Session lifetime exceeded; reconnect to continue"


def accepted(message_id: str) -> str:
    return f"250 2.0.0 OK queued as {message_id}"


def printable(reply: str) -> str:
    """A reply line as RFC 5321 §4.2 allows it: tab and printable ASCII only (anything else becomes '?')."""
    return _NOT_PRINTABLE.sub("?", reply)


_NOT_PRINTABLE = re.compile(r"[^\t\x20-\x7e]")


def _one_line(text: str, limit: int = 300) -> str:
    """Reply text is one line of printable ASCII: never echo control characters back."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:limit]


def for_error(error: BaseException) -> str:
    """The reply for anything submit() or the address policy raised."""
    if isinstance(error, SenderNotAllowed):
        return f"550 5.7.1 Sender not allowed for this client: {_one_line(error.address, 200)}"
    if isinstance(error, TooManyRecipients):
        return TOO_MANY_RECIPIENTS
    if isinstance(error, MessageTooLarge):
        return f"552 5.3.4 Message too big: {error.size} bytes; the limit is {error.limit}"
    if isinstance(error, BareNewline):
        return BARE_NEWLINE
    if isinstance(error, LineTooLong):
        return LINE_TOO_LONG
    if isinstance(error, InsufficientStorage):
        return INSUFFICIENT_STORAGE
    if isinstance(error, InvalidControlHeader):
        return f"550 5.6.0 {_one_line(error.detail)}"
    if isinstance(error, InvalidRequest):
        return f"554 5.6.0 {_one_line(error.detail)}"
    if isinstance(error, Unauthenticated):
        return AUTH_INVALID
    if isinstance(error, TemporarilyUnavailable):
        return LOCAL_ERROR
    if isinstance(error, MailrelayError):
        return LOCAL_ERROR
    return LOCAL_ERROR


def suppressed(reply: SmtpReply) -> str:
    """RCPT TO an address on the client's suppression list: the core's refusal, worded as an SMTP reply."""
    return f"{reply.code} {reply.enhanced} {_one_line(reply.text)}"


def for_address(error: InvalidRequest) -> str:
    """A MAIL or RCPT argument the core refused (source route, %-hack, bang path, bad syntax)."""
    return f"553 5.1.3 {_one_line(error.detail)}"


# aiosmtpd's own replies, given the enhanced status codes (RFC 3463) and the codes RFC 6409 asks for.
_STOCK = {
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message size exceeds fixed maximum",
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed maximum",
    "500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG,
    "500 Command line too long": "500 5.5.2 Command line too long",
    "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
    "553 5.1.3 Error: malformed address": "553 5.1.3 Malformed address (source routes are not accepted)",
    "503 Error: need MAIL command": "503 5.5.1 Need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Nested MAIL command",
    "503 Error: send HELO first": "503 5.5.1 Send HELO first",
    "503 Error: send EHLO first": "503 5.5.1 Send EHLO first",
    "500 Error: bad syntax": "500 5.5.2 Bad syntax",
}


def rewrite_stock(status: str) -> str:
    """Give aiosmtpd's stock reply its enhanced code; a 5xx 'Error: (Exception) ...' becomes 451."""
    replaced = _STOCK.get(status)
    if replaced is not None:
        return replaced
    if status.startswith("500 Error: (") or status == "500 Error: Cannot describe error":
        return LOCAL_ERROR  # should never happen (handle_exception answers first), but never 5xx for ours
    return status
