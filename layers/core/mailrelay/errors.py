"""Domain errors. Entry points map them to HTTP problems or SMTP replies in one place each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One precise complaint about one input field (a dotted path such as ``to[0].email``)."""

    field: str
    detail: str


class MailrelayError(Exception):
    """Base class: every error the core raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(MailrelayError):
    """The input is malformed; nothing was stored."""

    def __init__(self, detail: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(detail)
        self.problems = problems or []

    @classmethod
    def at(cls, field_path: str, detail: str) -> InvalidRequest:
        return cls(f"{field_path}: {detail}", [FieldProblem(field_path, detail)])


class BareNewline(InvalidRequest):
    """A CR or LF outside a CRLF pair (the stuff of SMTP smuggling)."""


class LineTooLong(InvalidRequest):
    """A line over RFC 5321's 998 octets."""


class InvalidControlHeader(InvalidRequest):
    """An X-Mailrelay-* header of an SMTP message that is unknown or holds a bad value."""


class MessageTooLarge(MailrelayError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class RequestTooLarge(MessageTooLarge):
    """The request body itself is over what the API can take in one call (not the message's limit)."""

    def __init__(self, size: int, limit: int) -> None:
        MailrelayError.__init__(
            self,
            f"the request body is {size} bytes; one request can carry at most {limit} bytes "
            "(AWS Lambda's 6 MB invocation limit): upload large attachments with POST /v1/uploads",
        )
        self.size = size
        self.limit = limit


class TooManyRecipients(InvalidRequest):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"{count} recipients; the limit is {limit}",
            [FieldProblem("to", f"{count} recipients in to, cc and bcc together; the limit is {limit}")],
        )
        self.count = count
        self.limit = limit


class Unauthenticated(MailrelayError):
    """No credentials, or credentials that match no active client."""


class SenderNotAllowed(MailrelayError):
    def __init__(self, field_path: str, address: str) -> None:
        super().__init__(f"{field_path}: this client may not send as {address}")
        self.field = field_path
        self.address = address


class NotFound(MailrelayError):
    pass


class Conflict(MailrelayError):
    """An Idempotency-Key reused with another payload, or still in flight."""


class TemporarilyUnavailable(MailrelayError):
    """A storage write failed: nothing was accepted and the caller should retry."""

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
