"""RFC 9457 problem documents: every error the API returns, mapped in this one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mailrelay import validation
from mailrelay.errors import (
    Conflict,
    FieldProblem,
    InvalidRequest,
    MailrelayError,
    MessageTooLarge,
    NotFound,
    RequestTooLarge,
    SenderNotAllowed,
    TemporarilyUnavailable,
    TooManyRecipients,
    Unauthenticated,
)

PROBLEM_JSON = "application/problem+json"


class MalformedBody(InvalidRequest):
    """The body is not a JSON document at all (400, not 422)."""


@dataclass
class Problem:
    status: int
    slug: str
    title: str
    detail: str
    errors: list[FieldProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    retryable: bool = False

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"urn:mailrelay:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "retryable": self.retryable,
        }
        if self.errors:
            doc["errors"] = [{"field": e.field, "detail": e.detail} for e in self.errors]
        return doc


def prefixed(prefix: str, path: str) -> str:
    """``path`` inside the item ``prefix`` names (``messages[2]`` + ``to[0]`` -> ``messages[2].to[0]``)."""
    if not prefix:
        return path
    if path == "body":
        return prefix
    return prefix + ("" if path.startswith("[") else ".") + path


def from_validation_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    problems = []
    for path, message in validation.problems(exc):
        problems.append(FieldProblem(prefixed(prefix, path or "body"), message))
    summary = "; ".join(f"{p.field}: {p.detail}" for p in problems[:3])
    return InvalidRequest(f"the request is invalid: {summary}", problems)


def problem_for(exc: MailrelayError) -> Problem:
    match exc:
        case MalformedBody():
            return Problem(400, "malformed-body", "Malformed request body", exc.detail, exc.problems)
        case TooManyRecipients():
            return Problem(422, "too-many-recipients", "Too many recipients", exc.detail, exc.problems)
        case InvalidRequest():
            return Problem(422, "invalid-request", "Invalid request", exc.detail, exc.problems)
        case RequestTooLarge():
            return Problem(
                413, "request-too-large", "Request too large", exc.detail, [FieldProblem("body", exc.detail)]
            )
        case MessageTooLarge():
            return Problem(
                413, "message-too-large", "Message too large", exc.detail, [FieldProblem("body", exc.detail)]
            )
        case Unauthenticated():
            return Problem(401, "unauthenticated", "Unauthenticated", exc.detail,
                           headers={"WWW-Authenticate": 'Bearer realm="mailrelay"'})  # fmt: skip
        case SenderNotAllowed():
            return Problem(403, "sender-not-allowed", "Sender not allowed", exc.detail,
                           [FieldProblem(exc.field, f"this client may not send as {exc.address}")])  # fmt: skip
        case NotFound():
            return Problem(404, "not-found", "Not found", exc.detail)
        case Conflict():
            return Problem(409, "idempotency-conflict", "Idempotency conflict", exc.detail,
                           [FieldProblem("Idempotency-Key", exc.detail)])  # fmt: skip
        case TemporarilyUnavailable():
            return Problem(503, "temporarily-unavailable", "Temporarily unavailable", exc.detail,
                           headers={"Retry-After": str(exc.retry_after)}, retryable=True)  # fmt: skip
    return Problem(500, "internal-error", "Internal error", "an unexpected error occurred", retryable=True)
