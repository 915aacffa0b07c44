"""A client's suppression list: look-ups at acceptance, entries added by delivery outcomes, and the
listing, reading and editing behind /v1/suppressions and the CLI.

Addresses are compared in one normalised form: the address as the core's parser writes it for SMTP
(domain case-folded and IDNA-encoded, local part kept as given: RFC 5321 leaves its case to the
receiving host). An entry past its ``expires_at`` no longer suppresses and is not shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from mailrelay.addresses import parse_address
from mailrelay.cursors import read_signed_cursor, sign_cursor
from mailrelay.errors import FieldProblem, InvalidRequest, NotFound
from mailrelay.models.status import SmtpReply
from mailrelay.models.suppression import SUPPRESSION_REASONS, Suppression, SuppressionReason, SuppressionSource
from mailrelay.ports import SuppressionStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
PARAMETERS = ("reason", "limit", "cursor")
CLIENT_REASONS = ("manual", "unsubscribe")  # the others are recorded from evidence (a bounce, a complaint)


class SuppressionRequest(BaseModel):
    """PUT /v1/suppressions/{email}."""

    model_config = ConfigDict(extra="forbid")

    reason: SuppressionReason
    expires_at: AwareDatetime | None = None


@dataclass(frozen=True)
class ImportSummary:
    added: int  # distinct addresses now on the list
    repeated: int  # rows naming an address an earlier row named
    problems: list[str]  # one line per row not added


def normalise(address: str, field: str = "email") -> str:
    return parse_address(address.strip(), field).smtp


class SuppressionList:
    def __init__(self, store: SuppressionStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    # -- at acceptance and after delivery -------------------------------------------------------

    def active(self, client_id: str, addresses: list[str]) -> dict[str, Suppression]:
        """The entries that suppress any of ``addresses`` (each already in normalised form) now."""
        if not addresses:
            return {}
        now = self.clock()
        found = self.store.get_many(client_id, addresses)
        return {a: e for a, e in found.items() if e.expires_at is None or e.expires_at > now}

    def record(
        self, client_id: str, address: str, reason: SuppressionReason, message_id: str, reply: SmtpReply | None,
        added_by: str | None = None,
    ) -> bool:  # fmt: skip
        """Add an entry from evidence (a bounce, a complaint), unless the address is listed already."""
        source = SuppressionSource(message_id=message_id, reply=reply, added_by=added_by)
        entry = Suppression(address=normalise(address), reason=reason, created_at=self.clock(), source=source)
        return self.store.add_if_absent(client_id, entry)

    # -- the API and the CLI ------------------------------------------------------------------

    def get(self, client_id: str, address: str) -> Suppression:
        key = normalise(address)
        found = self.active(client_id, [key]).get(key)
        if found is None:
            raise NotFound(f"{key} is not on this client's suppression list")
        return found

    def put(
        self, client_id: str, address: str, request: SuppressionRequest, added_by: str,
        reasons: tuple[str, ...] = CLIENT_REASONS,
    ) -> Suppression:  # fmt: skip
        """Add or replace the entry for ``address`` (a reason outside ``reasons`` is refused)."""
        key = normalise(address)
        if request.reason not in reasons:
            raise InvalidRequest.at("reason", f"one of {', '.join(reasons)} (the others are recorded by mailrelay)")
        now = self.clock()
        if request.expires_at is not None and request.expires_at <= now:
            raise InvalidRequest.at("expires_at", "must be in the future")
        entry = Suppression(address=key, reason=request.reason, created_at=now,
                            source=SuppressionSource(added_by=added_by), expires_at=request.expires_at)  # fmt: skip
        self.store.put(client_id, entry)
        return entry

    def import_entries(
        self, client_id: str, rows: list[tuple[str, str]], default_reason: SuppressionReason, added_by: str
    ) -> ImportSummary:
        """Bulk add (address, reason) rows (an empty reason: ``default_reason``); bad rows are reported, not added."""
        now = self.clock()
        entries: dict[str, Suppression] = {}
        problems: list[str] = []
        for number, (address, reason) in enumerate(rows, start=1):
            reason = reason.strip() or default_reason
            if reason not in SUPPRESSION_REASONS:
                problems.append(f"row {number}: reason {reason!r} is not one of {', '.join(SUPPRESSION_REASONS)}")
                continue
            try:
                key = normalise(address)
            except InvalidRequest as exc:
                problems.append(f"row {number}: {exc.problems[0].detail if exc.problems else exc.detail}")
                continue
            entries[key] = Suppression(address=key, reason=reason, created_at=now,
                                       source=SuppressionSource(added_by=added_by))  # fmt: skip
        self.store.put_many(client_id, list(entries.values()))
        return ImportSummary(len(entries), len(rows) - len(entries) - len(problems), problems)

    def remove(self, client_id: str, address: str) -> None:
        key = normalise(address)
        if not self.store.delete(client_id, key):
            raise NotFound(f"{key} is not on this client's suppression list")

    def page(self, client_id: str, params: Mapping[str, str] | None, cursor_key: bytes) -> dict[str, Any]:
        """One page in address order; the cursor is signed for this caller and this reason filter."""
        reason, limit, after = _parse_query(params or {}, cursor_key)
        found = self.store.page(client_id, after=after, reason=reason, limit=limit)
        now = self.clock()
        shown = [e for e in found.entries if e.expires_at is None or e.expires_at > now]
        resume = found.resume_after
        return {
            "suppressions": [e.view() for e in shown],
            "next_cursor": sign_cursor({"after": resume, "q": _fingerprint(reason)}, cursor_key) if resume else None,
            "has_more": resume is not None,
        }


def _fingerprint(reason: str | None) -> str:
    return hashlib.sha256((reason or "").encode()).hexdigest()[:16]


def _parse_query(params: Mapping[str, str], key: bytes) -> tuple[str | None, int, str | None]:
    problems = [FieldProblem(k, "must not be empty") for k in PARAMETERS if k in params and not params[k]]
    problems += [FieldProblem(k, f"unknown parameter; known: {', '.join(PARAMETERS)}")
                 for k in sorted(set(params) - set(PARAMETERS))]  # fmt: skip
    reason = params.get("reason") or None
    if reason is not None and reason not in SUPPRESSION_REASONS:
        problems.append(FieldProblem("reason", f"one of {', '.join(SUPPRESSION_REASONS)}"))
    limit = DEFAULT_LIMIT
    if params.get("limit"):
        text = params["limit"]
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
            problems.append(FieldProblem("limit", f"an integer from 1 to {MAX_LIMIT}"))
        else:
            limit = int(text)
    after = None
    if params.get("cursor") and not problems:
        data = read_signed_cursor(params["cursor"], key)
        after = data.get("after") if data else None
        if not isinstance(after, str) or data is None or data.get("q") != _fingerprint(reason):
            problems.append(FieldProblem("cursor", "not a cursor issued for this reason filter and this API key "
                                         "(pass next_cursor back unchanged, with the same reason)"))  # fmt: skip
    if problems:
        summary = "; ".join(f"{p.field}: {p.detail}" for p in problems[:3])
        raise InvalidRequest(f"the request is invalid: {summary}", problems)
    return reason, limit, after if isinstance(after, str) else None
